//! `$(scripts/bin.sh NAME)` in a lesson's command line: the script prints the path of the
//! program NAME wherever cargo builds it; in a transcript it stands for the program under test.

use std::path::Path;

/// Replaces each `$(scripts/bin.sh NAME)` and `$(scripts/bin.sh --example NAME)` in `line`
/// with the path of that program in `bin_dir`, as the script would print it.
pub fn expand(line: &str, bin_dir: &Path) -> Result<String, String> {
    const OPEN: &str = "$(scripts/bin.sh ";
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find(OPEN) {
        out.push_str(&rest[..at]);
        let tail = &rest[at + OPEN.len()..];
        let end = tail
            .find(')')
            .ok_or_else(|| format!("unclosed `$(scripts/bin.sh` in `{line}`"))?;
        let path = match tail[..end].split_whitespace().collect::<Vec<_>>()[..] {
            [name] => bin_dir.join(name),
            ["--example", name] => bin_dir.join("examples").join(name),
            _ => {
                return Err(format!(
                    "`{OPEN}{}` is not `{OPEN}[--example] NAME)`",
                    &tail[..=end]
                ));
            }
        };
        out.push_str(&path.display().to_string());
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_sh_becomes_the_path_of_the_program_under_test() {
        let bin = Path::new("/t/debug");
        let line = "strace -o /tmp/x $(scripts/bin.sh step1_create) --count 3";
        assert_eq!(
            expand(line, bin).expect("understood"),
            "strace -o /tmp/x /t/debug/step1_create --count 3"
        );
        let example = "strace $(scripts/bin.sh --example std_listener)";
        assert_eq!(
            expand(example, bin).expect("understood"),
            "strace /t/debug/examples/std_listener"
        );
        assert_eq!(expand("echo hi", bin).expect("nothing to do"), "echo hi");
        assert!(expand("x $(scripts/bin.sh a b)", bin).is_err());
        assert!(expand("x $(scripts/bin.sh a", bin).is_err());
    }
}
