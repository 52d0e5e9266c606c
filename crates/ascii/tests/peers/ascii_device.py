"""An ASCII line device for the `ascii` source's tests: a Mettler Toledo style scale that
answers MT-SICS `S` (send stable weight) commands, and a line sender (barcode reader,
printer status) driven by the test.

    ascii_device.py serial PATH   # opens PATH with pyserial at 9600 8N1, prints "SERIAL PATH"
    ascii_device.py tcp PORT      # listens on 127.0.0.1:PORT (0: any), prints "PORT n"

On a serial port it writes at the pace of 9600 baud (8N1: 10 bits a character) and reopens
the port when it vanishes (the test pulls the null-modem cable). Over TCP it sends to every
connected client and answers commands from each.

Commands on stdin, one a line; each is answered with "OK" on stdout once done:
    RAW <hex>                  send these bytes as they are
    WEIGHT <status> <value> <unit>   what `S` answers: "S <status> <value:>10> <unit>\r\n"
    MUTE / UNMUTE              stop / resume answering commands
    CLOSE                      TCP: close every client connection
    POLLS                      prints "POLLS n": the `S` commands answered so far
"""

import socket
import sys
import threading
import time

BAUD = 9600
CHAR_TIME = 10 / BAUD


class Device:
    def __init__(self):
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.weight = ("S", "0.00", "g")
        self.mute = False
        self.polls = 0
        self.port = None  # serial
        self.clients = []  # tcp
        self.paced = False

    def send(self, data):
        with self.write_lock:
            if self.paced:
                with self.lock:
                    port = self.port
                if port is None:
                    return
                try:
                    # A few characters at a time, at the line's speed: reads see real splits.
                    for i in range(0, len(data), 8):
                        chunk = data[i : i + 8]
                        port.write(chunk)
                        time.sleep(len(chunk) * CHAR_TIME)
                except Exception:
                    pass
            else:
                with self.lock:
                    clients = list(self.clients)
                for c in clients:
                    try:
                        c.sendall(data)
                    except OSError:
                        pass

    def command(self, cmd):
        """One SICS command (without its CRLF)."""
        with self.lock:
            if self.mute:
                return
            status, value, unit = self.weight
        if cmd in (b"S", b"SI"):
            with self.lock:
                self.polls += 1
            self.send(f"S {status} {value:>10} {unit}\r\n".encode("ascii"))
        else:
            self.send(b"ES\r\n")  # SICS: syntax error


def commands(dev, reader):
    buf = b""
    while True:
        data = reader()
        if not data:
            return
        buf += data
        while b"\r\n" in buf:
            cmd, buf = buf.split(b"\r\n", 1)
            dev.command(cmd.strip())


def serial_mode(dev, path):
    import serial  # pyserial

    dev.paced = True
    announced = False
    while True:
        try:
            port = serial.Serial(path, BAUD, bytesize=8, parity="N", stopbits=1, timeout=0.05)
        except Exception:
            time.sleep(0.05)
            continue
        with dev.lock:
            dev.port = port
        if not announced:
            print(f"SERIAL {path}", flush=True)
            announced = True

        buf = b""
        try:
            while True:
                buf += port.read(64)
                while b"\r\n" in buf:
                    cmd, buf = buf.split(b"\r\n", 1)
                    dev.command(cmd.strip())
        except Exception:
            pass
        with dev.lock:
            dev.port = None
        try:
            port.close()
        except Exception:
            pass
        time.sleep(0.05)


def tcp_mode(dev, port):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(4)
    print(f"PORT {server.getsockname()[1]}", flush=True)

    def serve(conn):
        def read():
            try:
                return conn.recv(256)
            except OSError:
                return b""

        commands(dev, read)
        with dev.lock:
            if conn in dev.clients:
                dev.clients.remove(conn)

    while True:
        conn, _ = server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with dev.lock:
            dev.clients.append(conn)
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def main():
    dev = Device()
    mode, where = sys.argv[1], sys.argv[2]
    target = serial_mode if mode == "serial" else tcp_mode
    arg = where if mode == "serial" else int(where)
    threading.Thread(target=target, args=(dev, arg), daemon=True).start()
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        op = words[0]
        if op == "RAW":
            dev.send(bytes.fromhex(words[1]))
        elif op == "WEIGHT":
            with dev.lock:
                dev.weight = (words[1], words[2], words[3])
        elif op == "MUTE":
            with dev.lock:
                dev.mute = True
        elif op == "UNMUTE":
            with dev.lock:
                dev.mute = False
        elif op == "CLOSE":
            with dev.lock:
                clients, dev.clients = dev.clients, []
            for c in clients:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
                except OSError:
                    pass
        elif op == "POLLS":
            with dev.lock:
                print(f"POLLS {dev.polls}", flush=True)
        print("OK", flush=True)


if __name__ == "__main__":
    main()
