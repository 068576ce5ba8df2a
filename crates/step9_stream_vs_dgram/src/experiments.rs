//! The seven experiments. Each runs once per socket type, makes its calls (narrated, one
//! line each) and returns its cell of the table.

use std::net::Shutdown;
use std::time::{Duration, Instant};

use socket2::Type;
use tutor::{Failure, narrate};

use crate::cli::Row;
use crate::lab::{BACKLOG, Lab, WAIT};

/// A failure's errno name (`ECONNREFUSED`), for a cell of the table.
pub fn error_name(failure: &Failure) -> String {
    match failure.io_error() {
        Some(error) => tutor::explain::error_name(error),
        // Not a socket call's error: an address that cannot be made (a path too long).
        None => "no address".to_owned(),
    }
}

impl Lab {
    pub fn measure(&self, row: Row, ty: Type) -> Result<String, Failure> {
        match row {
            Row::Handshake => self.handshake(ty),
            Row::Boundaries => self.boundaries(ty),
            Row::ShortBuffer => self.short_buffer(ty),
            Row::NoPeer => self.no_peer(ty),
            Row::Pressure => self.pressure(ty),
            Row::Order => self.order(ty),
            Row::End => self.end(ty),
        }
    }

    /// Stream: send on a socket that never connected fails; a connected client's data waits
    /// for a server that has not called accept yet. Datagram: a fresh socket sends at once.
    fn handshake(&self, ty: Type) -> Result<String, Failure> {
        let mut buf = [0u8; 64];
        if ty == Type::DGRAM {
            let receiver = self.socket(&self.by.receiver, ty)?;
            let address = self.bind(&self.by.receiver, &receiver, "receiver")?;
            let sender = self.socket(&self.by.sender, ty)?;
            if self.is_unix() {
                // A unix datagram socket needs a path of its own only to be answered.
                self.say
                    .note("(the sender does not bind: it will not be answered)");
            }
            let sent = narrate!(self.by.sender, sender.send_to(b"hello", &address))?;
            let got = narrate!(self.by.receiver, (&receiver).read(&mut buf))?;
            self.say
                .note("no call before send_to: no connect, no bind, no handshake");
            self.close(sender, receiver);
            return Ok(format!(
                "none: a fresh socket's send_to ({sent} B) arrived: {got} B"
            ));
        }
        let lone = self.socket(&self.by.sender, ty)?;
        let without = match narrate!(self.by.sender, lone.send(b"hello")) {
            Ok(n) => format!("sent {n}"),
            Err(failure) => error_name(&failure),
        };
        narrate!(self.by.sender, drop(lone));
        let (sender, receiver) = {
            let listener = self.socket(&self.by.receiver, ty)?;
            let address = self.bind(&self.by.receiver, &listener, "listener")?;
            narrate!(self.by.receiver, listener.listen(BACKLOG))?;
            let sender = self.socket(&self.by.sender, ty)?;
            narrate!(self.by.sender, sender.connect(&address))?;
            narrate!(self.by.sender, sender.send(b"early"))?;
            let (receiver, _) = narrate!(self.by.receiver, listener.accept())?;
            narrate!(self.by.receiver, drop(listener));
            (sender, receiver)
        };
        narrate!(self.by.receiver, receiver.set_read_timeout(Some(WAIT)))?;
        let got = narrate!(self.by.receiver, (&receiver).read(&mut buf))?;
        self.say.note("the connection existed before accept(): the kernel did the handshake and kept the data");
        self.close(sender, receiver);
        Ok(format!(
            "connect first (send without: {without}); {got} B sent before accept arrived"
        ))
    }

    /// Three sends; then, once everything has arrived, receive until nothing is left.
    fn boundaries(&self, ty: Type) -> Result<String, Failure> {
        let (sender, receiver) = self.pair(ty)?;
        let messages: [&[u8]; 3] = [b"abc", b"defgh", b"ijklmno"];
        for message in messages {
            narrate!(self.by.sender, sender.send(message))?;
        }
        if ty == Type::STREAM {
            self.wait_for_bytes(&receiver, 15)?;
        }
        let sizes = self.drain_sizes(&receiver, ty)?;
        self.close(sender, receiver);
        let shown: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
        Ok(format!(
            "3 sends (3, 5, 7 B) -> {} recv: {} B",
            sizes.len(),
            shown.join(", ")
        ))
    }

    /// Receives with a 1024-byte buffer, without waiting, until nothing is left; returns
    /// the size of each receive.
    fn drain_sizes(&self, receiver: &socket2::Socket, ty: Type) -> Result<Vec<usize>, Failure> {
        narrate!(self.by.receiver, receiver.set_nonblocking(true))?;
        let mut sizes = Vec::new();
        let mut buf = [0u8; 1024];
        for _ in 0..1000 {
            match narrate!(self.by.receiver, (&receiver).read(&mut buf)) {
                Ok(0) if ty == Type::STREAM => break,
                Ok(n) => sizes.push(n),
                Err(failure) if failure.would_block() => break,
                Err(failure) => return Err(failure),
            }
        }
        narrate!(self.by.receiver, receiver.set_nonblocking(false))?;
        Ok(sizes)
    }

    /// "0123456789" and "next"; the receiver reads 4 bytes, then whatever comes next.
    fn short_buffer(&self, ty: Type) -> Result<String, Failure> {
        let (sender, receiver) = self.pair(ty)?;
        narrate!(self.by.sender, sender.send(b"0123456789"))?;
        narrate!(self.by.sender, sender.send(b"next"))?;
        if ty == Type::STREAM {
            self.wait_for_bytes(&receiver, 14)?;
        }
        let mut four = [0u8; 4];
        let first = narrate!(self.by.receiver, (&receiver).read(&mut four))?;
        let mut buf = [0u8; 1024];
        let second = narrate!(self.by.receiver, (&receiver).read(&mut buf))?;
        self.close(sender, receiver);
        let kept = if buf[..second].starts_with(b"456789") {
            "rest kept"
        } else {
            "rest lost"
        };
        Ok(format!(
            "recv(4): {}, next recv: {} ({kept})",
            String::from_utf8_lossy(&four[..first]),
            String::from_utf8_lossy(&buf[..second])
        ))
    }

    /// Nothing at the address. A stream connects (and is refused); a datagram socket sends
    /// unconnected and waits, then connects, sends and waits.
    fn no_peer(&self, ty: Type) -> Result<String, Failure> {
        let nobody = self.nobody(ty)?;
        let by = &self.by.sender;
        if ty == Type::STREAM {
            let client = self.socket(by, ty)?;
            let result = narrate!(by, client.connect(&nobody));
            narrate!(by, drop(client));
            return Ok(match result {
                Ok(()) => "connect: succeeded?".to_owned(),
                Err(failure) => format!("connect fails at once: {}", error_name(&failure)),
            });
        }
        let mut buf = [0u8; 64];
        // Unconnected: send_to, then wait for anything at all.
        let lone = self.socket(by, ty)?;
        let _ = self.bind(by, &lone, "lone");
        let unconnected = match narrate!(by, lone.send_to(b"anyone?", &nobody)) {
            Err(failure) => format!("send_to: {}", error_name(&failure)),
            Ok(_) => match narrate!(by, (&lone).read(&mut buf)) {
                Err(failure) if failure.would_block() => "send_to ok, then silence".to_owned(),
                Err(failure) => format!("send_to ok, then {}", error_name(&failure)),
                Ok(_) => "send_to ok, then an answer?".to_owned(),
            },
        };
        narrate!(by, drop(lone));
        // Connected: connect, send, and the next call.
        let connected = self.socket(by, ty)?;
        let _ = self.bind(by, &connected, "connected");
        let told = match narrate!(by, connected.connect(&nobody)) {
            Err(failure) => format!("connect: {}", error_name(&failure)),
            Ok(()) => match narrate!(by, connected.send(b"anyone?")) {
                Err(failure) => format!("connect ok, send: {}", error_name(&failure)),
                Ok(_) => match narrate!(by, (&connected).read(&mut buf)) {
                    Err(failure) if failure.would_block() => "connected: silence".to_owned(),
                    Err(failure) => format!("connected: {} on recv", error_name(&failure)),
                    Ok(_) => "connected: an answer?".to_owned(),
                },
            },
        };
        narrate!(by, drop(connected));
        Ok(format!("{unconnected}; {told}"))
    }

    /// The sender sends without blocking until it has offered 200 messages of 1000 bytes
    /// or the kernel refuses more (EAGAIN); only then does the receiver read.
    fn pressure(&self, ty: Type) -> Result<String, Failure> {
        let stream = ty == Type::STREAM;
        let (sender, receiver) = self.pair(ty)?;
        narrate!(self.by.receiver, receiver.set_recv_buffer_size(4096))?;
        if stream {
            // A small send buffer too, so the sender soon finds the kernel full.
            narrate!(self.by.sender, sender.set_send_buffer_size(4096))?;
            // The receiver reads until end of file; a slow trickle must not time it out.
            narrate!(
                self.by.receiver,
                receiver.set_read_timeout(Some(Duration::from_secs(2)))
            )?;
        }
        narrate!(self.by.sender, sender.set_nonblocking(true))?;
        self.say.note("the sender offers 200 messages of 1000 bytes without blocking; the calls are counted, not shown, unless one fails");
        let sender_quietly = self.by.sender.quiet();
        let chunk = [b'x'; 1000];
        let (mut sent_msgs, mut sent_bytes, mut refused) = (0, 0, None);
        let deadline = Instant::now() + Duration::from_secs(1);
        for _ in 0..200 {
            match narrate!(sender_quietly, sender.send(&chunk)) {
                Ok(n) => {
                    sent_msgs += 1;
                    sent_bytes += n;
                }
                Err(failure) => {
                    refused = Some(error_name(&failure));
                    break;
                }
            }
            if Instant::now() > deadline {
                break;
            }
        }
        if stream {
            // The end of the data: a FIN after the last byte the kernel took.
            narrate!(self.by.sender, sender.shutdown(Shutdown::Write))?;
        } else {
            narrate!(self.by.receiver, receiver.set_nonblocking(true))?;
        }
        // The receiver reads everything there is, without waiting for more.
        self.say.note("the receiver reads everything there is; the calls are counted, not shown, unless one fails");
        let receiver_quietly = self.by.receiver.quiet();
        let (mut got_msgs, mut got_bytes) = (0, 0);
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match narrate!(receiver_quietly, (&receiver).read(&mut buf)) {
                Ok(0) if stream => break,
                Ok(n) => {
                    got_msgs += 1;
                    got_bytes += n;
                }
                Err(_) => break,
            }
        }
        self.close(sender, receiver);
        let stop = refused.map_or("never refused".to_owned(), |e| format!("then {e}"));
        self.say.note(format!(
            "sent {sent_msgs} sends ({sent_bytes} B), {stop}; received {got_bytes} B"
        ));
        Ok(if stream {
            let lost = sent_bytes - got_bytes.min(sent_bytes);
            format!(
                "kernel took {sent_bytes} of 200000 B, {stop}; received {got_bytes} B, {lost} lost"
            )
        } else {
            format!(
                "{sent_msgs} of 200 sent, {stop}; {got_msgs} received, {} dropped",
                sent_msgs - got_msgs.min(sent_msgs)
            )
        })
    }

    /// 100 messages numbered 0..99 (4 bytes each); the receiver checks order and duplicates.
    fn order(&self, ty: Type) -> Result<String, Failure> {
        let (sender, receiver) = self.pair(ty)?;
        self.say.note("100 sends of a 4-byte number, then receives until all 400 bytes came; the calls are counted, not shown, unless one fails");
        let sender_quietly = self.by.sender.quiet();
        for i in 0u32..100 {
            let number = i.to_be_bytes();
            narrate!(sender_quietly, sender.send(&number))?;
        }
        let receiver_quietly = self.by.receiver.quiet();
        let mut bytes = Vec::new();
        let mut buf = [0u8; 1024];
        let deadline = Instant::now() + Duration::from_secs(2);
        while bytes.len() < 400 && Instant::now() < deadline {
            match narrate!(receiver_quietly, (&receiver).read(&mut buf)) {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
        self.close(sender, receiver);
        let numbers: Vec<u32> = bytes
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let in_order = numbers.windows(2).all(|w| w[0] < w[1]);
        let mut unique = numbers.clone();
        unique.sort_unstable();
        unique.dedup();
        let duplicates = numbers.len() - unique.len();
        Ok(format!(
            "{} of 100 arrived, {}, {duplicates} duplicates",
            numbers.len(),
            if in_order { "in order" } else { "out of order" }
        ))
    }

    /// Stream: the sender closes, the receiver's recv returns 0. Datagram: an empty
    /// datagram also makes recv return 0, and a close sends nothing at all.
    fn end(&self, ty: Type) -> Result<String, Failure> {
        let (sender, receiver) = self.pair(ty)?;
        let mut buf = [0u8; 64];
        if ty == Type::STREAM {
            narrate!(self.by.sender, drop(sender));
            let n = narrate!(self.by.receiver, (&receiver).read(&mut buf))?;
            narrate!(self.by.receiver, drop(receiver));
            return Ok(format!("peer closes -> recv returns {n}"));
        }
        narrate!(self.by.sender, sender.send(b""))?;
        let empty = narrate!(self.by.receiver, (&receiver).read(&mut buf))?;
        narrate!(self.by.sender, drop(sender));
        let after = match narrate!(self.by.receiver, (&receiver).read(&mut buf)) {
            Ok(n) => format!("recv returns {n}"),
            Err(failure) if failure.would_block() => "nothing: recv waits (timeout)".to_owned(),
            Err(failure) => error_name(&failure),
        };
        narrate!(self.by.receiver, drop(receiver));
        Ok(format!(
            "an empty datagram -> recv returns {empty}; peer closes -> {after}"
        ))
    }
}
