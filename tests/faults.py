"""A TCP proxy on loopback that a test can cut and restore: a network partition between one
client and the real broker, while everyone else keeps the broker.

The broker's FAULTY listener (scripts/stack.sh) listens on KAFKA port + 100 and advertises
port + 200, where this proxy listens; a client bootstrapped at port + 200 therefore sends
all its traffic through the proxy.
"""
import socket
import subprocess
import threading


class CuttableProxy:
    def __init__(self, listen_port: int, target_port: int, host: str = "127.0.0.1"):
        self.address = (host, listen_port)
        self.target = (host, target_port)
        self._server: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> "CuttableProxy":
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind(self.address)
        except OSError as exc:
            server.close()
            holders = subprocess.run(["ss", "-tanp", f"sport = :{self.address[1]}"], capture_output=True,
                                     text=True).stdout
            raise OSError(exc.errno, f"{exc.strerror}: {self.address}, held by\n{holders}") from None
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()
        return self

    def cut(self) -> None:
        """Refuse new connections and break the open ones."""
        server, self._server = self._server, None
        if server is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would leave the
            # socket listening until then, and restore() could not bind the port again.
            try:
                server.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            server.close()
        with self._lock:
            for sock in self._connections:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._connections.clear()

    restore = start
    stop = cut

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)  # the timeout was for connecting: an idle connection stays
            with self._lock:
                if self._server is not server:  # cut while this one was being connected
                    client.close()
                    upstream.close()
                    continue
                self._connections |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            # shutdown() first: close() alone leaves the other direction's thread blocked in
            # recv(), and the upstream connection (a PostgreSQL session) open behind it.
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            with self._lock:
                self._connections -= {source, sink}


def hold(seconds: float) -> None:
    """Let an outage last this long. The duration is what such a test is about (roles must
    outlast it), not a wait for an effect: effects are awaited with wait_until."""
    threading.Event().wait(seconds)
