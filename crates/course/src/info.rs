//! The course's list of exercises, in order, with their lessons and hints: `info.toml`.

/// One exercise, as `info.toml` describes it.
#[derive(Debug, Clone)]
pub struct Exercise {
    /// The file's name without `.rs`: `exercises/NAME.rs`, `solutions/NAME.rs`.
    pub name: String,
    /// The step of the course it belongs to.
    pub step: u32,
    /// The lesson section to read when it fails: `lessons/05-recv-send.md#the-calls-three-ways`.
    pub read: String,
    /// The hint, bridging from the seed's Python.
    pub hint: String,
}

/// The text of info.toml, built into the checker.
pub const INFO: &str = include_str!("../info.toml");

/// Every exercise, in the course's order. Panics only if info.toml itself is malformed, which
/// the checker's tests rule out.
pub fn exercises() -> Vec<Exercise> {
    parse(INFO).unwrap_or_else(|e| panic!("crates/course/info.toml: {e}"))
}

pub fn parse(text: &str) -> Result<Vec<Exercise>, String> {
    let table: toml::Table = text.parse().map_err(|e| format!("{e}"))?;
    let list = table
        .get("exercise")
        .and_then(|v| v.as_array())
        .ok_or("no [[exercise]] entries")?;
    list.iter()
        .map(|entry| {
            let field = |key: &str| {
                entry
                    .get(key)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    .ok_or(format!("an exercise without a `{key}` string"))
            };
            let step = entry
                .get("step")
                .and_then(|v| v.as_integer())
                .ok_or("an exercise without a `step` number")?;
            Ok(Exercise {
                name: field("name")?,
                step: step as u32,
                read: field("read")?,
                hint: field("hint")?.trim().to_owned(),
            })
        })
        .collect()
}

pub fn find(name: &str) -> Option<Exercise> {
    exercises().into_iter().find(|e| e.name == name)
}
