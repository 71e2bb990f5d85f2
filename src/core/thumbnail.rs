//! Thumbnails of PNG, JPEG, GIF (first frame) and WebP images, generated in the Worker.
//!
//! Spec (v1.19): client-server-api, "Content repository" → "Thumbnails", and
//! `GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}`:
//! - "crop" returns exactly the requested size (the aspect ratio of the request), cutting
//!   the centre out of the image scaled to cover it;
//! - "scale" keeps the image's aspect ratio. The spec says both that scale "tries to return
//!   an image where either the width or the height is smaller" and that "Servers MUST NOT
//!   return a smaller thumbnail than requested": we follow the MUST, so the result is the
//!   smallest aspect-preserving size that is at least the requested width *and* height;
//! - never upscale: when the image is not larger than the request in both dimensions, the
//!   original is returned ("servers should return the original content").
//!
//! Decoding is bounded: dimensions are read from the header first and images over
//! [`MAX_PIXELS`] are refused (413 `M_TOO_LARGE` in the handler) before any pixel is decoded;
//! the decoder also gets an allocation limit.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};

/// Largest source image (in pixels) we decode: 12 MP is 48 MB as RGBA, within a Worker's memory.
pub const MAX_PIXELS: u64 = 12_000_000;
/// Largest side of a source image.
pub const MAX_SIDE: u32 = 16_384;
/// Decoder allocation limit.
pub const MAX_ALLOC: u64 = 64 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Crop,
    Scale,
}

impl Method {
    /// The `method` query parameter; absent means `scale`.
    pub fn parse(s: Option<&str>) -> Option<Method> {
        match s {
            None | Some("scale") => Some(Method::Scale),
            Some("crop") => Some(Method::Crop),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Crop => "crop",
            Method::Scale => "scale",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum ThumbError {
    /// Not one of the formats we thumbnail, or undecodable.
    Unsupported(String),
    /// Over [`MAX_PIXELS`] or [`MAX_SIDE`].
    TooLarge,
}

/// The image formats we thumbnail, by content type.
pub fn format_for(content_type: &str) -> Option<ImageFormat> {
    match super::media::essence(content_type) {
        "image/png" | "image/apng" => Some(ImageFormat::Png),
        "image/jpeg" | "image/jpg" | "image/pjpeg" => Some(ImageFormat::Jpeg),
        "image/gif" => Some(ImageFormat::Gif),
        "image/webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

/// The content type of an original served as its own thumbnail.
pub fn content_type_of(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "image/jpeg",
        ImageFormat::Gif => "image/gif",
        ImageFormat::WebP => "image/webp",
        _ => "image/png",
    }
}

/// What to produce for a request of `req` (width, height) from an image of `orig` size:
/// `None` means serve the original (it is not larger than the request), `Some` the size of
/// the thumbnail.
pub fn target_size(orig: (u32, u32), req: (u32, u32), method: Method) -> Option<(u32, u32)> {
    let (ow, oh) = orig;
    let (rw, rh) = (req.0.max(1), req.1.max(1));
    if rw >= ow || rh >= oh {
        // Any thumbnail at least as large as the request would be an upscale in some dimension.
        return None;
    }
    match method {
        Method::Crop => Some((rw, rh)),
        Method::Scale => {
            // Scale factor so both sides reach the request: max(rw/ow, rh/oh), rounded up.
            let (w, h) = if (rw as u64) * (oh as u64) >= (rh as u64) * (ow as u64) {
                (rw, div_ceil(oh as u64 * rw as u64, ow as u64) as u32)
            } else {
                (div_ceil(ow as u64 * rh as u64, oh as u64) as u32, rh)
            };
            if w >= ow || h >= oh {
                None
            } else {
                Some((w.max(1), h.max(1)))
            }
        }
    }
}

fn div_ceil(a: u64, b: u64) -> u64 {
    a.div_ceil(b)
}

/// Reads the dimensions from the header only (no pixel decoding).
pub fn dimensions(data: &[u8], format: ImageFormat) -> Result<(u32, u32), ThumbError> {
    let mut r = ImageReader::with_format(Cursor::new(data), format);
    r.limits(limits());
    r.into_dimensions().map_err(|e| ThumbError::Unsupported(e.to_string()))
}

fn limits() -> Limits {
    let mut l = Limits::default();
    l.max_image_width = Some(MAX_SIDE);
    l.max_image_height = Some(MAX_SIDE);
    l.max_alloc = Some(MAX_ALLOC);
    l
}

/// Checks the decode bounds for an image of this size.
pub fn check_bounds((w, h): (u32, u32)) -> Result<(), ThumbError> {
    if w > MAX_SIDE || h > MAX_SIDE || (w as u64) * (h as u64) > MAX_PIXELS {
        Err(ThumbError::TooLarge)
    } else {
        Ok(())
    }
}

/// A generated thumbnail.
#[derive(Debug)]
pub struct Thumbnail {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
}

/// Decodes `data` (of `format`; GIF and animated WebP: the first frame) and produces a
/// `size` thumbnail with `method`. JPEG stays JPEG; everything else becomes PNG (keeps
/// transparency). Both are inline-safe types.
pub fn generate(data: &[u8], format: ImageFormat, size: (u32, u32), method: Method) -> Result<Thumbnail, ThumbError> {
    check_bounds(dimensions(data, format)?)?;
    let mut r = ImageReader::with_format(Cursor::new(data), format);
    r.limits(limits());
    let img = r.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => ThumbError::TooLarge,
        e => ThumbError::Unsupported(e.to_string()),
    })?;
    let (w, h) = size;
    let out = match method {
        Method::Scale => img.resize_exact(w, h, FilterType::Triangle),
        Method::Crop => crop(&img, w, h),
    };
    // The two encoders are named rather than picked by `write_to(format)`, which would link
    // every enabled format's encoder (GIF's quantiser, WebP's) into the bundle (issue #17).
    let mut bytes = Vec::new();
    let (content_type, out, written) = if format == ImageFormat::Jpeg {
        let out = DynamicImage::ImageRgb8(out.to_rgb8());
        let written = out.write_with_encoder(JpegEncoder::new(&mut bytes));
        ("image/jpeg", out, written)
    } else {
        let written = out.write_with_encoder(PngEncoder::new(&mut bytes));
        ("image/png", out, written)
    };
    written.map_err(|e| ThumbError::Unsupported(e.to_string()))?;
    Ok(Thumbnail { bytes, content_type, width: out.width(), height: out.height() })
}

/// Scales to cover `w`×`h` and cuts out the centre.
fn crop(img: &DynamicImage, w: u32, h: u32) -> DynamicImage {
    let (ow, oh) = (img.width() as u64, img.height() as u64);
    // The largest centred region with the request's aspect ratio.
    let (cw, ch) = if ow * h as u64 > oh * w as u64 { (((oh * w as u64) / h as u64).max(1), oh) } else { (ow, ((ow * h as u64) / w as u64).max(1)) };
    let x = (ow - cw) / 2;
    let y = (oh - ch) / 2;
    img.crop_imm(x as u32, y as u32, cw as u32, ch as u32).resize_exact(w, h, FilterType::Triangle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgba, RgbaImage};

    fn encode(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
        let img = RgbaImage::from_fn(w, h, |x, y| Rgba([(x % 256) as u8, (y % 256) as u8, 128, 255]));
        let img = if format == ImageFormat::Jpeg {
            DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(img).to_rgb8())
        } else {
            DynamicImage::ImageRgba8(img)
        };
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), format).unwrap();
        out
    }

    #[test]
    fn sizes() {
        // Larger than (or equal to) the original in either dimension: the original.
        assert_eq!(target_size((400, 300), (400, 100), Method::Scale), None);
        assert_eq!(target_size((400, 300), (800, 600), Method::Crop), None);
        assert_eq!(target_size((400, 300), (100, 300), Method::Crop), None);
        assert_eq!(target_size((400, 300), (96, 96), Method::Crop), Some((96, 96)));
        // Scale keeps the aspect and is at least as large as the request in both sides.
        assert_eq!(target_size((400, 300), (100, 100), Method::Scale), Some((134, 100)));
        assert_eq!(target_size((400, 300), (200, 100), Method::Scale), Some((200, 150)));
        assert_eq!(target_size((300, 400), (100, 100), Method::Scale), Some((100, 134)));
        assert_eq!(target_size((400, 100), (300, 90), Method::Scale), Some((360, 90)));
        // Covering would reach the original: original.
        assert_eq!(target_size((400, 100), (399, 99), Method::Scale), None);
    }

    #[test]
    fn methods_parse() {
        assert_eq!(Method::parse(None), Some(Method::Scale));
        assert_eq!(Method::parse(Some("crop")), Some(Method::Crop));
        assert_eq!(Method::parse(Some("zoom")), None);
        assert_eq!(format_for("image/png"), Some(ImageFormat::Png));
        assert_eq!(format_for("image/svg+xml"), None);
    }

    #[test]
    fn every_format_thumbnails() {
        for (format, ct) in
            [(ImageFormat::Png, "image/png"), (ImageFormat::Jpeg, "image/jpeg"), (ImageFormat::Gif, "image/png"), (ImageFormat::WebP, "image/png")]
        {
            let data = encode(400, 300, format);
            assert_eq!(dimensions(&data, format).unwrap(), (400, 300));
            let t = generate(&data, format, (96, 96), Method::Crop).unwrap();
            assert_eq!((t.width, t.height, t.content_type), (96, 96, ct), "{format:?}");
            let back = image::load_from_memory(&t.bytes).unwrap();
            assert_eq!((back.width(), back.height()), (96, 96));
            let size = target_size((400, 300), (100, 100), Method::Scale).unwrap();
            let t = generate(&data, format, size, Method::Scale).unwrap();
            assert_eq!((t.width, t.height), (134, 100));
        }
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in data {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn bounded_decode() {
        assert_eq!(check_bounds((4000, 3000)), Ok(()));
        assert_eq!(check_bounds((5000, 5000)), Err(ThumbError::TooLarge));
        assert_eq!(check_bounds((20_000, 10)), Err(ThumbError::TooLarge));
        // A valid PNG whose header claims 12000x12000 is refused before decoding pixels.
        let mut png = encode(2, 2, ImageFormat::Png);
        png[16..20].copy_from_slice(&12_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&12_000u32.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(dimensions(&png, ImageFormat::Png), Ok((12_000, 12_000)));
        assert_eq!(generate(&png, ImageFormat::Png, (10, 10), Method::Crop).unwrap_err(), ThumbError::TooLarge);
        assert!(matches!(generate(b"not an image", ImageFormat::Png, (10, 10), Method::Crop), Err(ThumbError::Unsupported(_))));
    }
}
