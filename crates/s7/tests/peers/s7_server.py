"""python-snap7's S7 server (pure Python since 3.x) with the areas the tests read.

Usage: s7_server.py PORT   (0: any free port). Prints "PORT n" once listening, then obeys
one command per line on stdin, answering one line each:
  stop                      stop listening and drop clients      -> STOPPED
  start                     listen again on the same port        -> STARTED
  set AREA OFFSET HEX       write bytes into an area (DB1, MK)   -> OK
  get AREA OFFSET COUNT     read bytes of an area                -> hex
  reads                     read requests served so far          -> READS n
Areas: DB1 (every type at known offsets, see tests/snap7.rs), DB2 (64 zero bytes, for
writes), DB3 (2000 bytes: byte i = i % 251), MK (256 bytes), PE/PA (16 bytes), TM and CT
(16 timers/counters).
"""

import logging
import struct
import sys

from snap7.server import Server
from snap7.type import SrvArea

logging.disable(logging.CRITICAL)


def db1() -> bytearray:
    b = bytearray(128)
    b[0] = 0b0000_1010
    b[1] = 0xAB
    struct.pack_into(">h", b, 2, -1234)
    struct.pack_into(">H", b, 4, 0xBEEF)
    struct.pack_into(">i", b, 6, -123456)
    struct.pack_into(">I", b, 10, 0xDEADBEEF)
    struct.pack_into(">f", b, 14, 23.5)
    struct.pack_into(">d", b, 18, -1.25e10)
    struct.pack_into(">b", b, 26, -5)
    struct.pack_into(">B", b, 27, 200)
    struct.pack_into(">H", b, 28, 60000)
    struct.pack_into(">I", b, 30, 4000000000)
    struct.pack_into(">q", b, 34, -9000000000000000)
    struct.pack_into(">Q", b, 42, 18000000000000000000)
    b[50] = ord("Z")
    text = b"Tank A"
    b[52] = 20
    b[53] = len(text)
    b[54 : 54 + len(text)] = text
    struct.pack_into(">H", b, 74, 12478)  # DATE 2024-03-01
    struct.pack_into(">i", b, 76, -90000)  # TIME -90 s
    struct.pack_into(">I", b, 80, 49530250)  # TOD 13:45:30.250
    b[84:92] = bytes([0x24, 0x03, 0x01, 0x13, 0x45, 0x30, 0x12, 0x36])  # DT 2024-03-01 13:45:30.123
    b[92:104] = struct.pack(">HBBBBBBI", 2024, 3, 1, 5, 13, 45, 30, 500000000)  # DTL
    b[104:106] = bytes([0x21, 0x23])  # S5TIME 123 s
    struct.pack_into(">h", b, 106, 13824)  # level, raw 0..27648
    return b


def main() -> None:
    port = int(sys.argv[1])
    server = Server(log=False)
    server.host = "127.0.0.1"
    areas = {
        "DB1": (SrvArea.DB, 1, db1()),
        "DB2": (SrvArea.DB, 2, bytearray(64)),
        "DB3": (SrvArea.DB, 3, bytearray(i % 251 for i in range(2000))),
        "MK": (SrvArea.MK, 0, bytearray(256)),
        "PE": (SrvArea.PE, 0, bytearray(16)),
        "PA": (SrvArea.PA, 0, bytearray(16)),
        "TM": (SrvArea.TM, 0, bytearray(32)),
        "CT": (SrvArea.CT, 0, bytearray(32)),
    }
    areas["MK"][2][0] = 0b0000_0010  # M0.1
    struct.pack_into(">h", areas["MK"][2], 20, -7)  # MW20
    areas["PE"][2][0] = 0b0000_0010  # I0.1
    areas["PA"][2][4] = 0x5A  # QB4
    areas["TM"][2][6:8] = bytes([0x12, 0x50])  # T3: base 100 ms, 250 -> 25 s
    areas["CT"][2][4:6] = bytes([0x01, 0x23])  # C2: 123
    for kind, index, data in areas.values():
        server.register_area(kind, index, data)
    reads = [0]
    handle = server._handle_read_area

    def counted(request, client):  # type: ignore[no-untyped-def]
        reads[0] += 1
        return handle(request, client)

    server._handle_read_area = counted  # type: ignore[method-assign]
    server.start(tcp_port=port)
    port = server.server_socket.getsockname()[1]
    print(f"PORT {port}", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "stop":
            server.stop()
            print("STOPPED", flush=True)
        elif words[0] == "start":
            server.start(tcp_port=port)
            print("STARTED", flush=True)
        elif words[0] == "set":
            data = areas[words[1]][2]
            offset = int(words[2])
            new = bytes.fromhex(words[3])
            data[offset : offset + len(new)] = new
            print("OK", flush=True)
        elif words[0] == "get":
            data = areas[words[1]][2]
            offset, count = int(words[2]), int(words[3])
            print(bytes(data[offset : offset + count]).hex(), flush=True)
        elif words[0] == "reads":
            print(f"READS {reads[0]}", flush=True)
    server.stop()


if __name__ == "__main__":
    main()
