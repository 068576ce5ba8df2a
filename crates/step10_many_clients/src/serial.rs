//! The serial model: the seed's loop. Accept a client, echo until it leaves, close, accept
//! the next. While one client is served, the next waits in the kernel's accept queue: its
//! connect() has succeeded, its bytes sit in a receive buffer, and nobody reads them.

use socket2::Socket;
use tutor::{Failure, Narrator, narrate};

use crate::clients::{client_gone, is_clients_own, unheard};
use crate::moments::{Moment, ServerTurns};
use crate::shortage::{self, Shortage};
use crate::{Served, Settings, milestone};

/// What the serial model does when accept() finds no descriptor (see `shortage`).
const WAITS: &str = "the serial model holds no connection it could close to free one: it tries again in 250 ms (a pause, not a busy loop)";

pub fn serve(say: &Narrator, listener: Socket, settings: &Settings) -> Result<Served, Failure> {
    let mut buf = vec![0u8; settings.bufsize];
    let mut served = Served::default();
    let mut budget = settings.budget();
    let mut shortage = Shortage::default();
    let turns = &settings.turns;
    while settings.max_clients != Some(served.clients) {
        let number = served.clients + 1;
        // The next client's narrator: in full within --narrate, quiet after.
        let client_say = unheard(&budget.next(say));
        let (conn, _peer) = loop {
            let accepting = Moment::Accepting {
                accepted: served.clients,
            };
            let accept_say = shortage.narrator(&client_say);
            match narrate!(accept_say, listener.accept(), turns.at(accepting)) {
                Ok(accepted) => break accepted,
                Err(failure) if is_clients_own(&failure) => client_gone(&accept_say, &failure),
                Err(failure) if Shortage::is_shortage(&failure) => {
                    shortage.began(say, &listener, &failure, WAITS);
                    std::thread::sleep(shortage::PAUSE);
                }
                Err(failure) => return Err(failure),
            }
        };
        served.clients = number;
        shortage.ended(say, number);
        milestone(say, number, settings.narrate);
        let receiving = |echoed| Moment::Receiving {
            client: number,
            echoed,
        };
        served.bytes += serve_client(&client_say, conn, &mut buf, turns, receiving);
    }
    narrate!(say, drop(listener));
    Ok(served)
}

/// The echo loop of step 5, on a blocking socket: recv() waits for bytes, send() gives them
/// back, until recv() returns 0; then the connection is closed. Returns how many bytes were
/// echoed. An error (a client that resets the connection) ends this client, not the server.
/// `turns` and `receiving` are the demo's: where the server waits in recv().
pub fn serve_client(
    say: &Narrator,
    conn: Socket,
    mut buf: &mut [u8],
    turns: &ServerTurns,
    receiving: impl Fn(u64) -> Moment,
) -> u64 {
    let mut echoed = 0u64;
    'client: loop {
        let received = match narrate!(say, (&conn).read(&mut buf), turns.at(receiving(echoed))) {
            Ok(0) => {
                say.note("the client closed its side; no more bytes will come");
                break;
            }
            Ok(n) => n,
            Err(failure) => {
                say.hint(&failure);
                break;
            }
        };
        // send() may take fewer bytes than offered; a blocking socket waits for room, but
        // a send timeout or a signal can still cut it short. Loop until every byte is sent.
        let mut sent = 0;
        while sent < received {
            match narrate!(say, conn.send(&buf[sent..received])) {
                Ok(n) => sent += n,
                Err(failure) => {
                    say.hint(&failure);
                    break 'client;
                }
            }
        }
        echoed += received as u64;
    }
    narrate!(say, drop(conn));
    echoed
}
