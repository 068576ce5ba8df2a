//! Lessons' code excerpts, checked against the files they come from.
//!
//! A code block whose first line is a comment naming a file of the repository is an excerpt
//! of that file:
//!
//! ````text
//! ```rust
//! // crates/step2_bind/src/main.rs
//!     narrate!(say, socket.bind(&address))?;
//! // ...
//!     let local = narrate!(say, socket.local_addr())?;
//! ```
//! ````
//!
//! Its lines must appear in the file in the same order; a line holding only `// ...` (or
//! `# ...`) stands for lines left out. Each run of lines between those must appear in the
//! file as consecutive lines; indentation may be shifted as a whole, nothing else may differ.

use std::path::Path;

/// One excerpt: the file it names, where it sits in the lesson, and its lines.
#[derive(Debug, Clone)]
pub struct Excerpt {
    pub origin: String,
    pub file: String,
    pub lines: Vec<String>,
}

/// Every fenced block of `markdown`, with its info string, its first line and its lines.
fn fenced_blocks(markdown: &str) -> Vec<(usize, String, Vec<String>)> {
    let mut found = Vec::new();
    let mut lines = markdown.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let mut body = Vec::new();
        for (_, inner) in lines.by_ref() {
            if inner.starts_with("```") {
                break;
            }
            body.push(inner.to_owned());
        }
        found.push((number + 1, info.trim().to_owned(), body));
    }
    found
}

/// The path an excerpt names on its first line (`// crates/x/src/main.rs`, or a bare program,
/// `// solutions/05_echo.rs`), if it does.
fn named_file(first_line: &str) -> Option<&str> {
    let rest = first_line
        .strip_prefix("// ")
        .or_else(|| first_line.strip_prefix("# "))?
        .trim();
    let looks_like_a_path = ["crates/", "scripts/", "solutions/", "exercises/"]
        .iter()
        .any(|dir| rest.starts_with(dir))
        && !rest.contains(' ');
    looks_like_a_path.then_some(rest)
}

/// The excerpts of a lesson. A `rust` block that names no file is reported as an error:
/// Rust in a lesson must come from a file that compiles.
pub fn excerpts(markdown: &str, lesson: &str) -> Result<Vec<Excerpt>, Vec<String>> {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for (line, info, body) in fenced_blocks(markdown) {
        let origin = format!("{lesson}:{line}");
        match body.first().and_then(|first| named_file(first)) {
            Some(file) => found.push(Excerpt {
                origin,
                file: file.to_owned(),
                lines: body[1..].to_vec(),
            }),
            None if info.split(',').next() == Some("rust") => problems.push(format!(
                "{origin}: a rust block must name its source file on its first line (// crates/…)"
            )),
            None => {}
        }
    }
    if problems.is_empty() {
        Ok(found)
    } else {
        Err(problems)
    }
}

/// Checks an excerpt against its file under `root`. Returns the index of the source line
/// where the excerpt starts, so that a lesson's walk through a file can be checked for order.
pub fn check(excerpt: &Excerpt, root: &Path) -> Result<usize, String> {
    let path = root.join(&excerpt.file);
    let source = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: cannot read {}: {e}", excerpt.origin, excerpt.file))?;
    let source: Vec<&str> = source.lines().map(str::trim_end).collect();
    let mut from = 0;
    let mut start = None;
    for chunk in chunks(&excerpt.lines) {
        match find_chunk(&chunk, &source[from..]) {
            Some(at) => {
                start.get_or_insert(from + at);
                from += at + chunk.len();
            }
            None => {
                return Err(format!(
                    "{}: these lines are not in {} (in this order, after the lines before them):\n{}",
                    excerpt.origin,
                    excerpt.file,
                    chunk.join("\n")
                ));
            }
        }
    }
    Ok(start.unwrap_or(0))
}

/// Splits an excerpt at its `// ...` lines.
fn chunks(lines: &[String]) -> Vec<Vec<&str>> {
    let mut chunks = vec![Vec::new()];
    for line in lines {
        let trimmed = line.trim();
        if trimmed == "// ..." || trimmed == "# ..." {
            chunks.push(Vec::new());
        } else if let Some(chunk) = chunks.last_mut() {
            chunk.push(line.trim_end());
        }
    }
    chunks.retain(|c| !c.is_empty());
    chunks
}

/// Where `chunk` starts in `source`, allowing the chunk to be indented less (or more) than
/// the source by the same amount on every line.
fn find_chunk(chunk: &[&str], source: &[&str]) -> Option<usize> {
    let chunk_indent = common_indent(chunk);
    let chunk: Vec<&str> = chunk.iter().map(|l| dedent(l, chunk_indent)).collect();
    (0..source.len().saturating_sub(chunk.len() - 1)).find(|&start| {
        let window = &source[start..start + chunk.len()];
        let indent = common_indent(window);
        window
            .iter()
            .zip(&chunk)
            .all(|(have, want)| dedent(have, indent) == *want)
    })
}

fn common_indent(lines: &[&str]) -> usize {
    lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0)
}

fn dedent(line: &str, indent: usize) -> &str {
    if line.trim().is_empty() {
        ""
    } else {
        &line[indent.min(line.len())..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "fn main() {\n    let a = 1;\n    let b = 2;\n    let c = 3;\n}\n";

    fn check_against_source(excerpt_lines: &[&str]) -> Result<usize, String> {
        // Tests run in parallel threads: each call gets a directory of its own.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("excerpt-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(dir.join("crates")).expect("temp dir");
        std::fs::write(dir.join("crates/x.rs"), SOURCE).expect("write");
        let excerpt = Excerpt {
            origin: "l.md:1".into(),
            file: "crates/x.rs".into(),
            lines: excerpt_lines.iter().map(|s| s.to_string()).collect(),
        };
        let result = check(&excerpt, &dir);
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    #[test]
    fn an_exact_excerpt_passes_even_dedented() {
        assert!(check_against_source(&["let a = 1;", "let b = 2;"]).is_ok());
        assert!(check_against_source(&["    let a = 1;", "// ...", "    let c = 3;"]).is_ok());
    }

    #[test]
    fn a_changed_or_reordered_excerpt_fails() {
        assert!(check_against_source(&["let a = 1;", "let b = 20;"]).is_err());
        assert!(check_against_source(&["let a = 1;", "let c = 3;"]).is_err());
        assert!(check_against_source(&["let c = 3;", "// ...", "let a = 1;"]).is_err());
    }

    #[test]
    fn check_says_where_the_excerpt_starts() {
        assert_eq!(check_against_source(&["let b = 2;"]), Ok(2));
        assert_eq!(check_against_source(&["let a = 1;", "// ...", "}"]), Ok(1));
    }

    #[test]
    fn rust_blocks_must_name_their_file() {
        let md = "```rust\nlet x = 1;\n```\n";
        assert!(excerpts(md, "l.md").is_err());
        let md = "```rust\n// crates/x.rs\nlet x = 1;\n```\n";
        assert_eq!(excerpts(md, "l.md").expect("fine").len(), 1);
        let md = "```rust\n// solutions/05_echo.rs\nlet x = 1;\n```\n";
        assert_eq!(
            excerpts(md, "l.md").expect("fine")[0].file,
            "solutions/05_echo.rs"
        );
    }
}
