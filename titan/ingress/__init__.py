"""FastPath ingress, sans-I/O: framing, canonical-JSON HMAC, replay window, signal validation, replies.

The server (one epoll loop) lives in :mod:`titan.procs.ingress`; the client library in :mod:`titan.client`.
Contract: ``shared/spec/fastpath.md``.
"""
