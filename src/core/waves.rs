//! Coalescing concurrent reads into one round trip. Inside [`Waves::run`], every request
//! made through [`Waves::join`] while the driven future is waiting is queued; when the future
//! can go no further, the queued requests (a "wave") go out as ONE call of the flush
//! function, and each caller gets its own part of the answer. Reads that a pass runs
//! concurrently (`try_join` of independent store reads) thus cost one D1 round trip per wave
//! instead of one each; reads that depend on earlier ones form later waves. Generic and
//! single-threaded (the Worker's executor), so it is unit-tested natively; `store::db` applies
//! it to D1 batches.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

type Answer<R, E> = Result<Vec<R>, E>;

struct Slot<R, E> {
    answer: RefCell<Option<Answer<R, E>>>,
    waker: RefCell<Option<Waker>>,
}

impl<R, E> Slot<R, E> {
    fn set(&self, a: Answer<R, E>) {
        *self.answer.borrow_mut() = Some(a);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

/// A queued request's answer: one `R` per item it queued, in order.
pub struct Waiting<R, E>(Rc<Slot<R, E>>);

impl<R, E> Future for Waiting<R, E> {
    type Output = Answer<R, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(a) = self.0.answer.borrow_mut().take() {
            return Poll::Ready(a);
        }
        *self.0.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

type Queued<S, R, E> = Vec<(Vec<S>, Rc<Slot<R, E>>)>;

/// The queue of one request context (`None` while no [`Waves::run`] is active).
pub struct Waves<S, R, E> {
    queue: RefCell<Option<Queued<S, R, E>>>,
}

impl<S, R, E> Default for Waves<S, R, E> {
    fn default() -> Self {
        Waves { queue: RefCell::new(None) }
    }
}

/// Ends the collecting when `run` ends, however it ends (a dropped future included).
struct Stop<'a, S, R, E>(&'a RefCell<Option<Queued<S, R, E>>>);

impl<S, R, E> Drop for Stop<'_, S, R, E> {
    fn drop(&mut self) {
        *self.0.borrow_mut() = None;
    }
}

impl<S, R, E: Clone> Waves<S, R, E> {
    /// Queues `items` when a [`Waves::run`] is collecting; otherwise gives them back (the
    /// caller sends them itself).
    pub fn join(&self, items: Vec<S>) -> Result<Waiting<R, E>, Vec<S>> {
        let mut q = self.queue.borrow_mut();
        match q.as_mut() {
            Some(q) => {
                let slot = Rc::new(Slot { answer: RefCell::new(None), waker: RefCell::new(None) });
                q.push((items, slot.clone()));
                Ok(Waiting(slot))
            }
            None => Err(items),
        }
    }

    /// Drives `f`, sending what it queues in waves through `flush` (which must answer one
    /// `R` per item, in order; an error is every caller's error). Waves may overlap: a wave
    /// queued while another is out goes out at once. Nested runs join the outer one.
    pub async fn run<T, F, FF>(&self, f: impl Future<Output = T>, flush: F) -> T
    where
        F: Fn(Vec<S>) -> FF,
        FF: Future<Output = Answer<R, E>>,
    {
        if self.queue.borrow().is_some() {
            return f.await;
        }
        *self.queue.borrow_mut() = Some(Vec::new());
        let _stop = Stop(&self.queue);
        let mut f = std::pin::pin!(f);
        let mut out: Vec<Pin<Box<dyn Future<Output = ()> + '_>>> = Vec::new();
        let flush = &flush;
        std::future::poll_fn(|cx| loop {
            if let Poll::Ready(v) = f.as_mut().poll(cx) {
                return Poll::Ready(v);
            }
            let before = out.len();
            out.retain_mut(|w| w.as_mut().poll(cx).is_pending());
            let answered = out.len() < before;
            let wave = self.queue.borrow_mut().as_mut().map(std::mem::take).unwrap_or_default();
            if !wave.is_empty() {
                out.push(Box::pin(deliver(wave, flush)));
            } else if !answered {
                return Poll::Pending;
            }
        })
        .await
    }
}

/// Sends one wave and hands each caller its part.
async fn deliver<S, R, E: Clone, F, FF>(wave: Queued<S, R, E>, flush: &F)
where
    F: Fn(Vec<S>) -> FF,
    FF: Future<Output = Answer<R, E>>,
{
    let mut items = Vec::new();
    let mut slots = Vec::new();
    for (s, slot) in wave {
        slots.push((s.len(), slot));
        items.extend(s);
    }
    let answer = if items.is_empty() { Ok(Vec::new()) } else { flush(items).await };
    match answer {
        Ok(rows) => {
            let mut rows = rows.into_iter();
            for (n, slot) in slots {
                slot.set(Ok(rows.by_ref().take(n).collect()));
            }
        }
        Err(e) => {
            for (_, slot) in slots {
                slot.set(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Polls to completion (the futures here only wait on each other).
    fn block_on<T>(f: impl Future<Output = T>) -> T {
        let mut f = std::pin::pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..1000 {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
        panic!("stuck");
    }

    /// A flush that answers each item with itself times ten after one pending poll, and
    /// counts its calls.
    type Flushing = Pin<Box<dyn Future<Output = Answer<u32, String>>>>;

    fn flush(calls: &Cell<u32>) -> impl Fn(Vec<u32>) -> Flushing + '_ {
        move |items: Vec<u32>| {
            calls.set(calls.get() + 1);
            let mut first = true;
            Box::pin(std::future::poll_fn(move |cx| {
                if first {
                    first = false;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                if items.contains(&0) {
                    return Poll::Ready(Err("zero".to_owned()));
                }
                Poll::Ready(Ok(items.iter().map(|i| i * 10).collect()))
            }))
        }
    }

    /// Both outputs, polling each until done (the tests' `join`).
    async fn join<A, B>(a: impl Future<Output = A>, b: impl Future<Output = B>) -> (A, B) {
        let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
        let (mut x, mut y) = (None, None);
        std::future::poll_fn(|cx| {
            if x.is_none() {
                if let Poll::Ready(v) = a.as_mut().poll(cx) {
                    x = Some(v);
                }
            }
            if y.is_none() {
                if let Poll::Ready(v) = b.as_mut().poll(cx) {
                    y = Some(v);
                }
            }
            match (x.take(), y.take()) {
                (Some(p), Some(q)) => Poll::Ready((p, q)),
                (p, q) => {
                    x = p;
                    y = q;
                    Poll::Pending
                }
            }
        })
        .await
    }

    async fn read(w: &Waves<u32, u32, String>, items: Vec<u32>) -> Answer<u32, String> {
        match w.join(items) {
            Ok(waiting) => waiting.await,
            Err(items) => Ok(items),
        }
    }

    #[test]
    fn concurrent_reads_are_one_call_and_each_gets_its_part() {
        let w = Waves::default();
        let calls = Cell::new(0);
        let (a, b, c) = block_on(w.run(
            async {
                let ((a, b), c) = join(join(read(&w, vec![1, 2]), read(&w, vec![])), read(&w, vec![3])).await;
                (a, b, c)
            },
            flush(&calls),
        ));
        assert_eq!((a, b, c), (Ok(vec![10, 20]), Ok(vec![]), Ok(vec![30])));
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn dependent_reads_are_later_waves() {
        let w = Waves::default();
        let calls = Cell::new(0);
        let got = block_on(w.run(
            async {
                let first = read(&w, vec![1]).await?;
                let (x, y) = join(read(&w, first.clone()), read(&w, vec![2])).await;
                Ok::<_, String>((first, x?, y?))
            },
            flush(&calls),
        ));
        assert_eq!(got, Ok((vec![10], vec![100], vec![20])));
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn an_error_reaches_every_caller_of_its_wave_and_collecting_stops_after() {
        let w = Waves::default();
        let calls = Cell::new(0);
        let (a, b) = block_on(w.run(async { join(read(&w, vec![0]), read(&w, vec![4])).await }, flush(&calls)));
        assert_eq!((a, b), (Err("zero".to_owned()), Err("zero".to_owned())));
        // Outside a run nothing is queued.
        assert_eq!(w.join(vec![5]).err(), Some(vec![5]));
    }

    #[test]
    fn nested_runs_join_the_outer_one() {
        let w = Waves::default();
        let calls = Cell::new(0);
        let (a, b) = block_on(w.run(async { join(w.run(read(&w, vec![1]), flush(&calls)), read(&w, vec![2])).await }, flush(&calls)));
        assert_eq!((a, b), (Ok(vec![10]), Ok(vec![20])));
        assert_eq!(calls.get(), 1);
    }
}
