#!/usr/bin/python3
"""Forwards TCP connections on 127.0.0.1:PORT to a unix socket, so that a
client reaches the test Postgres (which listens on a unix socket only) the
way a pod reaches its database: by host name and TCP, through libpq's TCP,
SSL and GSS negotiation (the server declines both on a unix socket).
Writes "ready" to stdout once listening; runs until killed.

  tcp_forward.py PORT UNIX_SOCKET_PATH
"""
import socket
import sys
import threading


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    server = socket.create_server(("127.0.0.1", port))
    print("ready", flush=True)
    while True:
        client, _ = server.accept()
        upstream = socket.socket(socket.AF_UNIX)
        try:
            upstream.connect(path)
        except OSError:
            client.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=pump, args=(a, b), daemon=True).start()


if __name__ == "__main__":
    main()
