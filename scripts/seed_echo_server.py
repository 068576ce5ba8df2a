#!/usr/bin/env python3
"""An echo server written the way the seed article writes its server: one loop that accepts a
client and talks to it until it leaves (socket, bind, listen, then accept / recv / send /
close, over and over). While one client is connected, every other client waits.

It is the Python baseline of scripts/bench.sh; lessons/10-many-clients.md explains it.
It speaks step 5's echo protocol and prints the same ready line as the Rust servers:

    python3 scripts/seed_echo_server.py [--host 127.0.0.1] [--port 0] [--backlog 128] [--bufsize 4096]
"""
import argparse
import socket


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--backlog", type=int, default=128)
    parser.add_argument("--bufsize", type=int, default=4096)
    args = parser.parse_args()

    ss = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ss.bind((args.host, args.port))
    ss.listen(args.backlog)
    host, port = ss.getsockname()
    print(f"ready: listening on {host}:{port}", flush=True)

    while True:  # the server's endless loop
        cs, _address = ss.accept()
        while True:  # the conversation with one client
            try:
                data = cs.recv(args.bufsize)
                if not data:
                    break
                # The seed calls send(); sendall() is what it needs: send() may take only
                # part of the data.
                cs.sendall(data)
            except ConnectionError:
                break
        cs.close()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
