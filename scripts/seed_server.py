#!/usr/bin/env python3
"""A TCP echo server in Python, in the order the seed article gives a server's steps.

socket(AF_INET, SOCK_STREAM), bind, listen; then a loop that accepts one client and talks
with it (recv, send back what came) until the client closes; then close. It is the peer
lessons/07-connect.md connects step 7's client to, and the Python side of its tests.

    python3 scripts/seed_server.py [--host 127.0.0.1] [--port 0] [--max-clients 1]

With --port 0 the kernel chooses the port; the server prints the address it got in the
course's ready line, "ready: listening on 127.0.0.1:PORT", and then one line per client.
It stops after --max-clients clients (default 1; 0 means until Ctrl-C).
"""
import argparse
import socket
import sys


def serve(args):
    # The seed spells the type SOCK_STRAM; the constant is SOCK_STREAM.
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind((args.host, args.port))
    server.listen(args.backlog)
    host, port = server.getsockname()
    print(f"ready: listening on {host}:{port}", flush=True)

    served = 0
    while args.max_clients == 0 or served < args.max_clients:
        client, (peer_host, peer_port) = server.accept()
        served += 1
        print(f"client {served} connected from {peer_host}:{peer_port}", flush=True)
        echoed = 0
        while True:
            try:
                data = client.recv(args.bufsize)
            except ConnectionError as error:
                print(f"client {served}: {error}", flush=True)
                break
            if not data:  # recv returned b'': the client closed its end
                break
            # send() may take only part of the data; sendall() loops until all is sent.
            client.sendall(data)
            echoed += len(data)
        client.close()
        print(f"client {served} left after {echoed} bytes", flush=True)
    server.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--backlog", type=int, default=5)
    parser.add_argument("--bufsize", type=int, default=1024)
    parser.add_argument("--max-clients", type=int, default=1)
    args = parser.parse_args()
    try:
        serve(args)
    except KeyboardInterrupt:
        pass
    except OSError as error:  # the seed's socket.error: in Python 3 an alias of OSError
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
