//! Messages over a byte stream. TCP delivers bytes in order and nothing else (step 5): where
//! one message ends is for the two programs to agree on. Two common ways, with what each costs:
//!
//! - **lines**: a delimiter byte (`\n`) ends each message. The reader must look at every byte
//!   to find it, keep what follows for the next message, and set a maximum: a peer that never
//!   sends the delimiter would otherwise fill the reader's memory. The delimiter cannot appear
//!   inside a message.
//! - **length**: a 4-byte big-endian length, then that many bytes. Nothing to scan, any bytes
//!   may be in a message, and the reader knows how much to wait for; but the length comes from
//!   the peer, so it is checked against a maximum *before* anything is allocated: a peer can
//!   send `ff ff ff ff` and ask for 4 GiB.
//!
//! Sending is the same on both sides: build the whole message (header and body) in one buffer
//! and send all of it, in a loop, because `send` returns how many bytes the kernel took.

use clap::ValueEnum;
use socket2::Socket;
use tutor::narrate::Budget;
use tutor::{Failure, Narrator, narrate};

/// `--framing`: how a message ends.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Framing {
    /// A newline ends each message (the newline is not part of it)
    Lines,
    /// A 4-byte big-endian length comes before each message
    Length,
}

/// What the next message turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// A whole message (without its newline or its length).
    Message(Vec<u8>),
    /// The peer closed between two messages: a clean end.
    Closed,
    /// The peer closed in the middle of a message, after this many of its bytes.
    Cut(usize),
    /// The message would be larger than the maximum: refused, nothing allocated for it.
    TooLong(String),
}

/// Reads messages from one connection. Bytes read past the end of a message wait in `pending`
/// for the next one.
#[derive(Debug)]
pub struct Reader {
    framing: Framing,
    max: usize,
    /// One recv()'s worth of bytes.
    chunk: Vec<u8>,
    /// Bytes received and not yet handed out as a message.
    pending: Vec<u8>,
    /// How far into `pending` the newline search has looked already.
    scanned: usize,
    /// How many of its recv() calls are narrated.
    budget: Budget,
}

impl Reader {
    /// A reader whose recv() returns at most `bufsize` bytes, which refuses messages longer
    /// than `max` bytes, and narrates its first `show` recv() calls.
    pub fn new(framing: Framing, bufsize: usize, max: usize, show: u64) -> Reader {
        Reader {
            framing,
            max,
            chunk: vec![0; bufsize],
            pending: Vec::new(),
            scanned: 0,
            budget: Budget::new(show, "recv() calls", "--show-calls"),
        }
    }

    /// Whether the reader has narrated all the recv() calls it may.
    pub fn quiet(&self) -> bool {
        self.budget.spent()
    }

    /// The next message from `conn`.
    pub fn next(&mut self, say: &Narrator, socket: &Socket) -> Result<Next, Failure> {
        match self.framing {
            Framing::Lines => self.next_line(say, socket),
            Framing::Length => self.next_frame(say, socket),
        }
    }

    /// A line: the bytes up to the next `\n`.
    fn next_line(&mut self, say: &Narrator, socket: &Socket) -> Result<Next, Failure> {
        loop {
            // Look for the newline in the bytes not searched yet: every byte is looked at
            // once, however many recv()s the line took.
            let unsearched = &self.pending[self.scanned..];
            if let Some(at) = unsearched.iter().position(|&byte| byte == b'\n') {
                let end = self.scanned + at;
                if end > self.max {
                    return Ok(Next::TooLong(format!(
                        "a line of {end} bytes, more than the maximum of {}",
                        self.max
                    )));
                }
                let line = self.pending[..end].to_vec();
                self.pending.drain(..=end); // what follows is the next line's start
                self.scanned = 0;
                return Ok(Next::Message(line));
            }
            self.scanned = self.pending.len();
            // No newline yet. Without a maximum, a peer that never sends one fills memory.
            if self.pending.len() > self.max {
                return Ok(Next::TooLong(format!(
                    "no newline in {} bytes, more than the maximum of {}",
                    self.pending.len(),
                    self.max
                )));
            }
            let n = self.fill(say, socket)?;
            if n == 0 {
                return Ok(self.end());
            }
        }
    }

    /// A length-prefixed message: 4 bytes of length, big-endian, then the message.
    fn next_frame(&mut self, say: &Narrator, socket: &Socket) -> Result<Next, Failure> {
        if !self.wait_for(say, socket, 4)? {
            return Ok(self.end());
        }
        let header: [u8; 4] = self.pending[..4].try_into().expect("4 bytes");
        let len = u32::from_be_bytes(header) as usize;
        // The length is the peer's word: check it before allocating anything.
        if len > self.max {
            return Ok(Next::TooLong(format!(
                "the header announces {len} bytes, more than the maximum of {}",
                self.max
            )));
        }
        if !self.wait_for(say, socket, 4 + len)? {
            return Ok(self.end());
        }
        let message = self.pending[4..4 + len].to_vec();
        self.pending.drain(..4 + len);
        Ok(Next::Message(message))
    }

    /// Receives until `pending` holds at least `wanted` bytes; `false` if the peer closed first.
    fn wait_for(
        &mut self,
        say: &Narrator,
        socket: &Socket,
        wanted: usize,
    ) -> Result<bool, Failure> {
        while self.pending.len() < wanted {
            if self.fill(say, socket)? == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// One recv(): appends what came to `pending`; 0 means the peer closed.
    fn fill(&mut self, say: &Narrator, socket: &Socket) -> Result<usize, Failure> {
        let say = self.budget.next(say);
        let mut buf = self.chunk.as_mut_slice();
        let n = narrate!(say, (&socket).read(&mut buf))?;
        self.pending.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    /// How many bytes have been received but are not part of a message handed out yet.
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    /// The peer closed: between messages, or in the middle of one.
    fn end(&self) -> Next {
        match self.pending.len() {
            0 => Next::Closed,
            n => Next::Cut(n),
        }
    }
}

/// A message as it goes on the wire: followed by `\n`, or after its length.
pub fn encode(framing: Framing, message: &[u8]) -> Vec<u8> {
    let mut wire = Vec::with_capacity(message.len() + 4);
    match framing {
        Framing::Lines => {
            wire.extend_from_slice(message);
            wire.push(b'\n');
        }
        Framing::Length => {
            let len = u32::try_from(message.len()).expect("a message under 4 GiB");
            wire.extend_from_slice(&len.to_be_bytes());
            wire.extend_from_slice(message);
        }
    }
    wire
}

/// Sends every byte of `data`: send() returns how many bytes the kernel took, which can be
/// fewer than it was given, so the loop sends the rest (Python's `sendall`, Rust's
/// `write_all`). Returns how many send() calls it took.
pub fn send_all(say: &Narrator, socket: &Socket, data: &[u8]) -> Result<u32, Failure> {
    let mut sent = 0;
    let mut calls = 0;
    while sent < data.len() {
        sent += narrate!(say, socket.send(&data[sent..]))?;
        calls += 1;
    }
    Ok(calls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_on_the_wire() {
        assert_eq!(encode(Framing::Lines, b"hi"), b"hi\n");
        assert_eq!(encode(Framing::Length, b"hi"), [0, 0, 0, 2, b'h', b'i']);
    }
}
