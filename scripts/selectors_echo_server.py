#!/usr/bin/env python3
"""An echo server in one thread with non-blocking sockets and the selectors module (epoll on
Linux): what a reader of the seed would write next, following the Python documentation.
Each connection keeps the bytes a partial send() left over, and is watched for writing only
while it has some.

It is the second Python baseline of scripts/bench.sh; lessons/10-many-clients.md explains it.
It speaks step 5's echo protocol and prints the same ready line as the Rust servers:

    python3 scripts/selectors_echo_server.py [--host 127.0.0.1] [--port 0] [--backlog 128] [--bufsize 4096]
"""
import argparse
import selectors
import socket


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--backlog", type=int, default=128)
    parser.add_argument("--bufsize", type=int, default=4096)
    args = parser.parse_args()
    bufsize = args.bufsize

    sel = selectors.DefaultSelector()
    ss = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ss.bind((args.host, args.port))
    ss.listen(args.backlog)
    ss.setblocking(False)
    sel.register(ss, selectors.EVENT_READ, None)
    host, port = ss.getsockname()
    print(f"ready: listening on {host}:{port}", flush=True)

    def close(conn):
        sel.unregister(conn)
        conn.close()

    while True:
        for key, mask in sel.select():
            if key.data is None:  # the listener: accept every waiting connection
                while True:
                    try:
                        conn, _address = ss.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ, bytearray())
                continue
            conn, unsent = key.fileobj, key.data
            try:
                if mask & selectors.EVENT_WRITE and unsent:
                    sent = conn.send(unsent)
                    del unsent[:sent]
                    if not unsent:
                        sel.modify(conn, selectors.EVENT_READ, unsent)
                    continue
                if unsent:
                    continue  # read no more until the last echo is out
                data = conn.recv(bufsize)
                if not data:
                    close(conn)
                    continue
                try:
                    sent = conn.send(data)
                except BlockingIOError:
                    sent = 0
                if sent < len(data):
                    unsent += data[sent:]
                    sel.modify(conn, selectors.EVENT_READ | selectors.EVENT_WRITE, unsent)
            except (BlockingIOError, InterruptedError):
                continue
            except ConnectionError:
                close(conn)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
