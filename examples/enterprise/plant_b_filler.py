"""Plant B's filler (vendor C), a pymodbus Modbus TCP device for the enterprise example.

Usage: plant_b_filler.py PORT   (0 picks a free port; prints "PORT <n>" once listening)

Vendor C's register map (holding registers, protocol addresses from 0), unlike plant A's
vendor A filler:
  0     status code: 0 stopped, 1 running, 2 idle, 9 fault
  1-2   speed, float32 ABCD, bottles per HOUR
  3-4   good bottles, uint32 ABCD
  5     rejected bottles, uint16
  6     product temperature, int16, hundredths of degC
It runs for 50 s, then stops for 10 s (a downtime), and counts bottles while running.
"""

import asyncio
import struct
import sys
import time

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

START = time.monotonic()
RATE_PER_H = 21_600.0  # 360 bottles per minute


def state_at(t):
    running_s = (t // 60) * 50 + min(t % 60, 50)
    return (1 if t % 60 < 50 else 0), running_s


def registers():
    t = time.monotonic() - START
    code, running_s = state_at(t)
    made = int(running_s * RATE_PER_H / 3600.0)
    reject = made // 50
    good = made - reject
    speed = RATE_PER_H if code == 1 else 0.0
    temp = 420 + int(10 * ((t / 7.0) % 1.0))
    regs = [code]
    regs += [int.from_bytes(struct.pack(">f", speed)[i : i + 2], "big") for i in (0, 2)]
    regs += [(good >> 16) & 0xFFFF, good & 0xFFFF]
    regs += [reject & 0xFFFF, temp]
    return regs


async def refresh(function_code, start_address, address, count, current, values):
    for i, v in enumerate(registers()):
        if 0 <= i - start_address < len(current):
            current[i - start_address] = v
    return None


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 5021
    device = SimDevice(
        id=1,
        simdata=(
            [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
            [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
            [SimData(0, values=registers(), datatype=DataType.REGISTERS)],
            [SimData(0, values=[0], datatype=DataType.REGISTERS)],
        ),
        action=refresh,
    )

    async def run():
        server = ModbusTcpServer([device], address=("127.0.0.1", port))
        await server.serve_forever(background=True)
        print(f"PORT {server.transport.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
