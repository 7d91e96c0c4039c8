"""Ids the node makes up where an API needs one and the upstream gave none (unique, not secret)."""

import random
import time


def _token(length: int = 24) -> str:
    return f"{random.getrandbits(length * 4):0{length}x}"


def tool_call_id() -> str:
    return "call_" + _token()


def completion_id() -> str:
    return "chatcmpl-" + _token()


def message_id() -> str:
    return "msg_" + _token()


def unix_time() -> int:
    return int(time.time())
