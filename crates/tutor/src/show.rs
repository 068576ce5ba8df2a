//! How the course prints what it did not make up itself: addresses, data (as strace shows
//! it), and text a user typed.
//! Pure formatting, used by every other module: it depends on none of them.

use std::fmt::Write;

use socket2::SockAddr;

/// An address as the lessons print it: `127.0.0.1:8080`, `[::1]:8080`, a unix socket's path,
/// or `(unnamed)` for a unix socket without a name.
pub fn address(address: &SockAddr) -> String {
    if let Some(inet) = address.as_socket() {
        return inet.to_string();
    }
    if let Some(path) = address.as_pathname() {
        return printable(&path.display().to_string());
    }
    if address.is_unnamed() {
        return "(unnamed)".to_owned();
    }
    if let Some(name) = address.as_abstract_namespace() {
        return format!("@{}", printable(&String::from_utf8_lossy(name)));
    }
    "(unknown address)".to_owned()
}

/// User text (a host name, a path) made safe to print: control characters are written as
/// escapes (`\n`, `\x1b`), so an error stays one line and no terminal escape sequence
/// reaches the terminal.
pub fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// How many bytes of data a narration shows, as `strace -s 32` does.
pub const SHOWN_BYTES: usize = 32;

/// Data as strace prints it: `"hello\n"`, escaped, cut after 32 bytes with `...`.
pub fn bytes(data: &[u8]) -> String {
    let mut text = String::from("\"");
    for &byte in data.iter().take(SHOWN_BYTES) {
        escape_byte(&mut text, byte);
    }
    text.push('"');
    if data.len() > SHOWN_BYTES {
        text.push_str("...");
    }
    text
}

/// Text as strace prints a string argument: quoted, every control character escaped, so that
/// a path or host name a user typed stays on one line and sends no escape sequence to the
/// terminal.
pub fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for ch in text.chars() {
        if ch.is_ascii() {
            escape_byte(&mut out, ch as u8);
        } else if ch.is_control() {
            let _ = write!(out, "\\u{{{:x}}}", ch as u32);
        } else {
            out.push(ch);
        }
    }
    out.push('"');
    out
}

fn escape_byte(text: &mut String, byte: u8) {
    match byte {
        b'\n' => text.push_str("\\n"),
        b'\r' => text.push_str("\\r"),
        b'\t' => text.push_str("\\t"),
        b'"' => text.push_str("\\\""),
        b'\\' => text.push_str("\\\\"),
        0x20..=0x7e => text.push(byte as char),
        _ => {
            let _ = write!(text, "\\x{byte:02x}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_shown_as_strace_shows_it() {
        assert_eq!(bytes(b"hi\n"), "\"hi\\n\"");
        assert_eq!(bytes(&[0, 255]), "\"\\x00\\xff\"");
        let long = [b'a'; 40];
        assert_eq!(bytes(&long), format!("\"{}\"...", "a".repeat(32)));
    }

    #[test]
    fn user_text_stays_on_one_line() {
        assert_eq!(quoted("a\nb\x1b[31m"), "\"a\\nb\\x1b[31m\"");
        assert_eq!(quoted("caf\u{e9}"), "\"caf\u{e9}\"");
    }
}
