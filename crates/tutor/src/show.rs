//! How the course prints what it did not make up itself: addresses, and text a user typed.
//! Pure formatting, used by every other module: it depends on none of them.

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
