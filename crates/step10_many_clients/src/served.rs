//! What a model did: counted as it serves, printed at the end and at milestones.

use tutor::Narrator;

use crate::Model;

/// What a model did, for the summary.
#[derive(Default, Debug)]
pub struct Served {
    pub clients: u64,
    pub bytes: u64,
    /// The most threads serving clients at once (threads model).
    pub peak_threads: u64,
    /// epoll_wait calls, and the events they returned (poll model).
    pub waits: u64,
    pub events: u64,
}

/// After the narration budget: a line at the 10th, 100th, 1000th, ... client.
pub fn milestone(say: &Narrator, number: u64, narrate: u64) {
    if number > narrate && number >= 10 && is_power_of_ten(number) {
        say.say(format_args!("{number} clients accepted so far"));
    }
}

fn is_power_of_ten(mut n: u64) -> bool {
    while n >= 10 && n.is_multiple_of(10) {
        n /= 10;
    }
    n == 1
}

pub fn summarise(say: &Narrator, model: Model, served: &Served) {
    let clients = served.clients;
    let mut line = format!(
        "served {clients} client{} ({model}), echoed {} bytes",
        if clients == 1 { "" } else { "s" },
        served.bytes
    );
    match model {
        Model::Serial => line.push_str("; one at a time"),
        Model::Threads => line.push_str(&format!(
            "; at most {} threads at once (the acceptor and one per client)",
            served.peak_threads
        )),
        Model::Poll => line.push_str(&format!(
            "; one thread; {} epoll_wait calls returned {} events",
            served.waits, served.events
        )),
    }
    say.say(line);
}
