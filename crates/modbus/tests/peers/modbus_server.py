"""A pymodbus 3.16 Modbus server for Backplane's integration tests.

Usage: modbus_server.py PORT [rtu]   (0 picks a free port; `rtu`: RTU frames over TCP)
       modbus_server.py serial PATH  (RTU on a serial port, 19200 8N2, e.g. a socat pty)
Prints "PORT <n>" (TCP) or "SERIAL <path>" once listening, then serves until killed.
On the serial line a request for a unit id other than 1 and 2 gets no answer, as on a
real bus where no device has that id.

Values are encoded here with Python's struct module, independently of Backplane's
decoder, in every word order. Addresses below are protocol addresses (0-based); the
SimData API of pymodbus 3.16 takes protocol addresses directly (the older
ModbusSequentialDataBlock is one above: block address 1 serves protocol address 0).
"""

import asyncio
import struct
import sys

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice


def words(fmt, value, order):
    """Registers for `value` packed big-endian as `fmt`, rearranged into `order`."""
    raw = struct.pack(">" + fmt, value)
    regs = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    if order in ("CDAB", "DCBA"):
        regs.reverse()
    if order in ("BADC", "DCBA"):
        regs = [r[::-1] for r in regs]
    return [int.from_bytes(r, "big") for r in regs]


def text(value, registers, swap=False):
    raw = value.encode("ascii").ljust(registers * 2, b"\0")
    pairs = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    if swap:
        pairs = [p[::-1] for p in pairs]
    return [int.from_bytes(p, "big") for p in pairs]


ORDERS = ["ABCD", "CDAB", "BADC", "DCBA"]


def holding_map():
    """address -> register value; addresses left out raise illegal data address."""
    regs = {}

    def put(address, values):
        for i, v in enumerate(values):
            regs[address + i] = v

    put(0, [54321])  # u16
    put(1, words("h", -1234, "ABCD"))  # i16
    for i, order in enumerate(ORDERS):
        put(2 + 2 * i, words("I", 3_000_000_000, order))  # u32: 2, 4, 6, 8
        put(10 + 2 * i, words("i", -123_456_789, order))  # i32: 10, 12, 14, 16
        put(18 + 2 * i, words("f", -1234.5, order))  # f32: 18, 20, 22, 24
        put(26 + 4 * i, words("d", 6.02214076e23, order))  # f64: 26, 30, 34, 38
    put(42, words("Q", 12_345_678_901_234_567_890, "ABCD"))  # u64
    put(46, words("q", -1_234_567_890_123_456, "CDAB"))  # i64
    put(50, [0xA005])  # bits 0, 2, 13, 15 set
    put(51, text("PUMP-7", 5))  # 51..55
    put(56, text("ABCDE", 3, swap=True))  # 56..58
    put(60, words("h", 395, "ABCD"))  # 39.5 degF in tenths
    put(61, [4000])  # 400.0 bottle/min in tenths
    put(70, [70, 71])  # 72 left out: a hole inside a coalesced read
    put(73, [73, 74])
    put(100, [100])  # reading it answers "server device failure"
    put(120, [0] * 10)  # write tests: 120..129 (129 is limited to 1000 when read)
    return regs


def blocks(regs):
    out, run = [], []
    for address in sorted(regs):
        if run and address != run[0] + len(run[1]):
            out.append(SimData(run[0], values=run[1], datatype=DataType.REGISTERS))
            run = []
        if not run:
            run = [address, []]
        run[1].append(regs[address])
    if run:
        out.append(SimData(run[0], values=run[1], datatype=DataType.REGISTERS))
    return out


async def device_actions(function_code, start_address, address, count, registers, values):
    if function_code in (3, 6, 16) and address <= 100 < address + count:
        return ExcCodes.DEVICE_FAILURE
    # hr:129 holds at most 1000, like a PLC limiting a setpoint: a larger write is taken
    # (and echoed), but the next read finds the limited value.
    if function_code == 3 and address <= 129 < address + count:
        registers[129 - start_address] = min(registers[129 - start_address], 1000)
    return None


def coils(pattern):
    """16 coils (bit addressing: coil N is bit N of register 0)."""
    return [SimData(0, values=[(pattern >> i) & 1 == 1 for i in range(16)], datatype=DataType.BITS)]


def main():
    unit1 = SimDevice(
        id=1,
        simdata=(
            coils(0b0000_0000_0010_0001),  # coil 0 and coil 5 on
            coils(0b0000_0000_1000_0000),  # di 7 on
            blocks(holding_map()),
            [SimData(0, values=[777] + words("f", 3.25, "ABCD"), datatype=DataType.REGISTERS)],
        ),
        action=device_actions,
    )
    unit2 = SimDevice(
        id=2,
        simdata=(
            coils(0),
            coils(0),
            [SimData(0, values=[222], datatype=DataType.REGISTERS)],
            [SimData(0, values=[0], datatype=DataType.REGISTERS)],
        ),
    )

    async def tcp(port, framer):
        server = ModbusTcpServer([unit1, unit2], framer=framer, address=("127.0.0.1", port))
        await server.serve_forever(background=True)
        bound = server.transport.sockets[0].getsockname()[1]
        print(f"PORT {bound}", flush=True)
        await asyncio.Event().wait()

    def silent_for_other_units(sending, frame):
        # On a bus, no device answers an id that is not there. pymodbus 3.16's SimDevice
        # answers it with "server device failure" (an internal KeyError) whatever
        # ignore_missing_devices says, so its answer is dropped here (an RTU answer starts
        # with the unit id).
        if sending and frame[:1] not in (b"\x01", b"\x02"):
            return b""
        return frame

    async def serial(path):
        server = ModbusSerialServer(
            [unit1, unit2],
            framer=FramerType.RTU,
            port=path,
            baudrate=19200,
            bytesize=8,
            # No parity, two stop bits (the serial line guide's other framing): pyserial
            # cannot set parity on a Linux pty (tcsetattr answers EINVAL).
            parity="N",
            stopbits=2,
            trace_packet=silent_for_other_units,
        )
        await server.serve_forever(background=True)
        print(f"SERIAL {path}", flush=True)
        await asyncio.Event().wait()

    if sys.argv[1] == "serial":
        run = serial(sys.argv[2])
    else:
        framer = FramerType.RTU if sys.argv[2:] == ["rtu"] else FramerType.SOCKET
        run = tcp(int(sys.argv[1]), framer)

    asyncio.run(run)


if __name__ == "__main__":
    main()
