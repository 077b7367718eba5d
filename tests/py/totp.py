"""RFC 6238 TOTP (HMAC-SHA-1, 6 digits, 30 s), written from the RFC for the tests: it shares no
code with the server. Usage: totp.py BASE32_SECRET STEPS_FROM_NOW  -> prints the code."""
import base64
import hashlib
import hmac
import struct
import sys
import time

secret, offset = sys.argv[1], int(sys.argv[2])
key = base64.b32decode(secret + "=" * (-len(secret) % 8))
counter = int(time.time()) // 30 + offset
digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
start = digest[-1] & 0x0F
value = (struct.unpack(">I", digest[start:start + 4])[0] & 0x7FFFFFFF) % 1_000_000
print(f"{value:06d}")
