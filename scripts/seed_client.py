#!/usr/bin/env python3
"""A TCP client the way the seed article's client goes: create a socket, connect, send,
receive, close. It talks to step 5's echo server (or any echo server) and prints the echo.

    python3 scripts/seed_client.py HOST PORT MESSAGE

Where the seed's own client pseudocode says SOCK_DGRAM, this one says SOCK_STREAM: a TCP
server needs a TCP client (lessons/errata.md, item 7).
"""
import socket
import sys


def main():
    if len(sys.argv) != 4:
        sys.stderr.write("usage: seed_client.py HOST PORT MESSAGE\n")
        return 2
    host, port, message = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    data = (message + "\n").encode("utf-8")  # sockets carry bytes, not characters

    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.connect((host, port))
    # send() may take only part of the bytes; sendall() loops until all are sent.
    client.sendall(data)
    # recv(1024) returns what has arrived, at most 1024 bytes: one call may bring only
    # part of the echo, so read until it is all here, or the server closes (b"").
    echo = b""
    while len(echo) < len(data):
        chunk = client.recv(1024)
        if not chunk:
            break
        echo += chunk
    client.close()
    sys.stdout.write(echo.decode("utf-8", errors="replace"))
    return 0 if echo == data else 1


if __name__ == "__main__":
    sys.exit(main())
