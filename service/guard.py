"""Guards around uvicorn: slow or surplus connections, file descriptors, and the port."""
import asyncio
import logging
import os
import time

from utils import UsageError, log


def guarded_protocol(header_timeout, max_connections):
    """uvicorn's h11 protocol with two guards it lacks: a connection whose request headers do not arrive within
    header_timeout seconds (of its opening, or of its previous response) is closed, and connections beyond
    max_connections are answered 503 and closed at once, so that idle or slow clients can neither hold the server's
    file descriptors nor its memory."""
    from uvicorn.protocols.http.h11_impl import H11Protocol
    refusal = b'{"error": "the service has too many open connections; retry shortly"}'
    busy = (b'HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n'
            b'content-length: %d\r\n\r\n%s' % (len(refusal), refusal))
    malformed = (b'{"error": "malformed HTTP request (its request line, headers, Content-Length or chunked body '
                 b'could not be parsed)"}')

    class GuardedProtocol(H11Protocol):
        refused = False

        def connection_made(self, transport):
            if len(self.server_state.connections) >= max_connections:
                # Answer, end our side, and close a moment later: closing at once with the client's request unread
                # would reset the connection, and the client might never see the answer.
                self.refused = True
                transport.write(busy)
                transport.write_eof()
                asyncio.get_running_loop().call_later(1.0, transport.close)
                return
            super().connection_made(transport)
            self._expect_request()

        def _expect_request(self):
            self.loop.call_later(header_timeout, self._close_if_no_request, self.cycle)

        def _close_if_no_request(self, cycle):
            if self.cycle is cycle and not self.transport.is_closing():
                self.transport.close()

        def on_response_complete(self):
            super().on_response_complete()
            self._expect_request()

        def data_received(self, data):
            if not self.refused:
                super().data_received(data)

        def connection_lost(self, exc):
            if not self.refused:
                super().connection_lost(exc)

        def send_400_response(self, msg):
            # uvicorn answers what h11 cannot parse (a bad Content-Length, broken chunking) in plain text.
            import h11
            try:
                for event in (h11.Response(status_code=400, headers=[
                        (b'content-type', b'application/json'), (b'connection', b'close'),
                        (b'content-length', b'%d' % len(malformed))]), h11.Data(data=malformed), h11.EndOfMessage()):
                    self.transport.write(self.conn.send(event))
            except h11.LocalProtocolError:
                pass  # the answer was already under way: closing is all that is left
            self.transport.close()
    return GuardedProtocol


class OutOfDescriptorsOncePerMinute(logging.Filter):
    """When file descriptors run out anyway (other files of the process, a lower limit set later), asyncio logs every
    failed accept() with its traceback, thousands of times a second; this keeps one short line a minute."""

    def __init__(self):
        super().__init__()
        self.last = -float('inf')

    def filter(self, record):
        if 'out of system resource' not in str(record.msg):
            return True
        if time.monotonic() - self.last < 60:
            return False
        self.last = time.monotonic()
        record.msg, record.args, record.exc_info, record.exc_text = (
            'out of file descriptors: new connections wait until others close (raise ulimit -n or lower '
            '--max_connections); said once a minute', (), None, None)
        return True


MACOS_OPEN_MAX = 10240  # macOS reports an unlimited hard limit, but refuses a soft limit above this


def descriptor_limit():
    """The process's file-descriptor limit, first raised as far as the system allows; None where there is no such
    limit to read (Windows, where asyncio's proactor has none)."""
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = hard == resource.RLIM_INFINITY
    for target in ((1 << 20, MACOS_OPEN_MAX) if unlimited else (hard,)):
        if soft < target:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                return target
            except (ValueError, OSError):  # above what this system lets a process have: try the next
                continue
    return soft


def connection_limits(wanted):
    """(connections, listen backlog) that fit the process's file-descriptor limit (raised to its hard limit first),
    keeping 32 descriptors for the process's own files.

    asyncio accepts up to `backlog` connections in one go before any of them can be refused, so the descriptors in
    use can reach connections + backlog: both must fit, or accept() fails for want of descriptors.

    Raises:
      UsageError: the limit leaves room for fewer than 8 connections.
    """
    limit = descriptor_limit()
    if limit is None:
        return wanted, 128
    in_use = len(os.listdir('/proc/self/fd' if os.path.isdir('/proc/self/fd') else '/dev/fd'))
    room = limit - in_use - 32
    backlog = max(8, min(128, room // 4))
    if room - backlog < 8:
        raise UsageError('the file-descriptor limit (ulimit -n %d) leaves room for %d connections; raise it to at '
                         'least %d' % (limit, max(room - backlog, 0), limit - room + backlog + 8))
    if room - backlog < wanted:
        log.info('--max_connections %d lowered to %d to fit the file-descriptor limit (ulimit -n %d)', wanted,
                 room - backlog, limit)
    return min(wanted, room - backlog), backlog


def check_port(host, port):
    """Raise UsageError if the address cannot be listened on (uvicorn would only log it and exit 1)."""
    import socket
    try:
        with socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        raise UsageError('cannot listen on %s:%d (%s); choose another --port or --host'
                         % (host, port, error.strerror)) from None
