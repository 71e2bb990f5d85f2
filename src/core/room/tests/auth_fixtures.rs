//! Authorization fixtures (`tests/fixtures/auth/*.json`): `{ "description", "versions",
//! "room"?, "steps" }` — the steps play one after the other on one branch; each allowed step
//! extends it, a denied one must be refused with `M_FORBIDDEN` and leave the room unchanged.

use serde::Deserialize;

use super::fixture::{run_all, RoomSetup, Step};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFixture {
    #[allow(dead_code)]
    description: String,
    versions: Vec<String>,
    room: Option<RoomSetup>,
    steps: Vec<Step>,
}

#[test]
fn auth_fixtures() {
    run_all::<AuthFixture>(
        "auth",
        |f| f.versions.clone(),
        |f, run| {
            let branch = match &f.room {
                Some(setup) => run.setup(setup)?,
                None => Default::default(),
            };
            run.steps(branch, &f.steps)?;
            Ok(())
        },
    );
}
