//! What one client's conversation amounted to, counted as it goes and summed up in one line
//! when the client leaves. Nothing here makes a socket call.

use tutor::{Failure, Narrator, explain};

/// The counts of one client's conversation.
#[derive(Default)]
pub struct Conversation {
    recvs: u64,
    sends: u64,
    short_sends: u64,
    /// Bytes echoed so far.
    pub echoed: u64,
    largest: usize,
    /// Bytes echoed since the last newline.
    after_newline: u64,
}

impl Conversation {
    /// A recv() returned `n` bytes (not 0).
    pub fn received(&mut self, n: usize) {
        self.recvs += 1;
        self.largest = self.largest.max(n);
    }

    /// A send() took `taken` of the `offered` bytes.
    pub fn sent(&mut self, taken: usize, offered: usize) {
        self.sends += 1;
        if taken < offered {
            self.short_sends += 1;
        }
    }

    /// Every byte of `data` went back to the client.
    pub fn record_echo(&mut self, data: &[u8]) {
        self.echoed += data.len() as u64;
        self.after_newline = match data.iter().rposition(|&b| b == b'\n') {
            Some(at) => (data.len() - at - 1) as u64,
            None => self.after_newline + data.len() as u64,
        };
    }

    /// How the conversation ended (`ended`: the failure that ended it, if any), and one
    /// line on how it went.
    pub fn summarise(&self, say: &Narrator, client: u32, bufsize: usize, ended: Option<&Failure>) {
        match ended {
            Some(failure) => say.hint(failure),
            None => {
                say.note("recv() returned 0: the client closed its side; no more bytes will come")
            }
        }
        say.say(format!(
            "client {client}: {} bytes echoed; {} recv() calls returned data, the largest {} bytes (bufsize {bufsize}); {} send() calls, {} of them short",
            self.echoed, self.recvs, self.largest, self.sends, self.short_sends
        ));
        match ended.and_then(Failure::io_error) {
            Some(error) => say.say(format!(
                "client {client} is gone ({}): the server closes its socket and goes on to the next client",
                explain::error_name(error)
            )),
            None if self.after_newline > 0 => say.say(format!(
                "client {client} closed {} bytes after its last newline: if it spoke in lines, it left in mid-message",
                self.after_newline
            )),
            None => {}
        }
    }
}
