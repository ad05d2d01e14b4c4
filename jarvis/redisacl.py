"""A Redis connection's user and address, and what its ACL must grant, in one wording.

Used by the kill switch (`jarvis.store.redis_killswitch`) and LLM routing
(`jarvis.actuators.llm.routing`), which may not import each other: a layer of
its own at the bottom, like `jarvis.sqlengine`. It reads redis-py's connection
keyword arguments (``connection_pool.connection_kwargs``) and imports no client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["acl_rule", "address", "database", "denied", "user"]


def user(kwargs: Mapping[str, object]) -> str:
    """The user the URL names; Redis's ``default`` when it names none."""
    return str(kwargs.get("username") or "default")


def address(kwargs: Mapping[str, object]) -> str:
    """``host:port``, or for ``unix://`` the socket's path (no host: it read as ``?:?``)."""
    if "path" in kwargs:
        return str(kwargs["path"])
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


def database(kwargs: Mapping[str, object]) -> int:
    """The database the URL picks (0 when it picks none)."""
    return int(str(kwargs.get("db") or 0))


def acl_rule(commands: Sequence[str], keys: str, *, db: int = 0) -> str:
    """The ACL rule granting ``commands`` on ``keys`` (a key or a glob), with SELECT for a
    database ``db`` other than 0 (redis-py sends it as each connection opens)."""
    select = " +select" if db else ""
    return " ".join(f"+{command}" for command in commands) + f"{select} ~{keys}"


def denied(kwargs: Mapping[str, object], what: str, why: str, rule: str, setting: str) -> str:
    """The words for a user the server's ACL refuses (NOPERM) what ``what`` needs: the user,
    never the password, ``why`` (the server's answer), the ``rule`` to grant, and the
    ``setting`` to give another user in. No retry brings a grant."""
    name = user(kwargs)
    return (
        f"its ACL denies user {name} what {what} needs: {why}; grant it (ACL SETUSER "
        f"{name} {rule}), or give {setting} a user that has it"
    )
