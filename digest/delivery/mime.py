"""The MIME message for each recipient: multipart/alternative (text first, then HTML), UTF-8,
quoted-printable, with the list headers mail providers expect of a newsletter.

:func:`build_message` builds one with Python's ``email`` package: the reference. The send path
uses :class:`MessageTemplate`, which encodes an issue's MIME once and splices each recipient in.

Building and serialising a personalised newsletter with Python's ``email`` package costs a few
milliseconds per recipient, several times what the SMTP connection that carries it costs. Yet
only a handful of bytes differ between two recipients: ``To``, ``Date``, ``Message-ID``,
``List-Unsubscribe`` and the places where the rendered issue carries the markers
:data:`~digest.models.TOKEN_MARK` and :data:`~digest.models.EMAIL_MARK`.

:class:`MessageTemplate` therefore encodes everything else once, as bytes, and keeps the marker
positions as slots. The body parts are quoted-printable (RFC 2045 §6.7), whose lines may not
exceed 76 characters. Splicing a value of another length into an encoded line would break that,
so every constant piece is encoded as if it started at column 0, and a soft line break (``=``
CRLF, which decodes to nothing) ends the piece before a slot and the slot's value itself. Each
piece thus stays valid on its own, whatever length the spliced values have.

The result parses to the same headers and decoded parts as :func:`build_message` (tested in
``tests/test_delivery_mime.py``), at a fraction of the cost.
"""

from __future__ import annotations

import binascii
import html as htmllib
import itertools
import re
import secrets
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.policy import EmailPolicy
from email.utils import format_datetime, formataddr, parseaddr
from urllib.parse import quote, urlsplit, urlunsplit

from digest.config import NewsletterSettings
from digest.models import EMAIL_MARK, MAX_SUBJECT, NAME_MARK, TOKEN_MARK, RenderedIssue
from digest.text import one_line


class _FoldingPolicy(EmailPolicy):
    """The SMTP policy, minus one folding quirk: CPython moves a whole header value that would fit
    on a line of its own onto a continuation line ("Subject:" CRLF " The ..."). That is legal, but
    parsers then hand the value back with a leading space. Such ASCII values are folded between
    words instead."""

    def _fix(self, name: str, value: str, folded: str) -> str:
        quirk = f"{name}:{self.linesep} "
        text = str(value)
        if not folded.startswith(quirk) or not text.isascii() or "  " in text:
            return folded
        width = self.max_line_length or 78
        lines = [f"{name}:"]
        for word in text.split(" "):
            if len(lines[-1]) + 1 + len(word) > width and lines[-1] != f"{name}:":
                lines.append("")
            lines[-1] += " " + word
        return self.linesep.join(lines) + self.linesep

    def fold(self, name: str, value: str) -> str:
        return self._fix(name, value, super().fold(name, value))

    def fold_binary(self, name: str, value: str) -> bytes:
        folded = super().fold_binary(name, value)
        return self._fix(name, value, folded.decode("ascii", "surrogateescape")).encode("ascii", "surrogateescape")


POLICY = _FoldingPolicy(linesep="\r\n")
# RFC 6532: header fields in UTF-8, for a message to an address whose local part is not ASCII.
UTF8_POLICY = POLICY.clone(utf8=True)


def wire_address(address: str) -> str:
    """The address as it goes on the wire: an internationalised domain in its ASCII (IDNA,
    punycode) form; the local part as it is. Raises ValueError when the domain cannot be encoded."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"{address!r} is not an address (no local part or domain)")
    if domain.isascii():
        return address
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError as exc:
        raise ValueError(f"the domain {domain!r} cannot be written in IDNA ({exc})") from None


def ascii_domain(domain: str) -> str:
    """A domain as header fields and the envelope carry it: IDNA (punycode) when not ASCII."""
    return domain if domain.isascii() else domain.encode("idna").decode("ascii")


def ascii_url(url: str) -> str:
    """A URL fit for a header field (List-Unsubscribe): an internationalised host in IDNA form,
    any other non-ASCII character percent-encoded (RFC 3987 §3.1)."""
    if url.isascii():
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = parts.netloc.replace(host, ascii_domain(host), 1) if host else parts.netloc
    return quote(urlunsplit(parts._replace(netloc=netloc)), safe=":/?#[]@!$&'()*+,;=%~-._")


def _sender_field(nl: NewsletterSettings) -> str:
    """The From: value with the sender's domain in IDNA form (an ASCII header either way)."""
    name, address = parseaddr(nl.sender)
    wire = wire_address(address)
    return nl.sender if wire == address else formataddr((name, wire))


def needs_smtputf8(address: str) -> bool:
    """Whether mail to ``address`` needs SMTPUTF8 (RFC 6531): a local part that is not ASCII."""
    return not wire_address(address).isascii()


def to_field(address: str, name: str | None) -> str:
    """The To: value: the subscriber's name and the wire address. With an ASCII address the
    name is quoted, or RFC 2047-encoded when not ASCII; with a UTF-8 one (RFC 6532) it is
    written as UTF-8."""
    wire = wire_address(address)
    name = display_name(name)
    if not name:
        return wire
    if wire.isascii():
        return formataddr((name, wire))
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{wire}>'


def api_to_field(address: str, name: str | None) -> str:
    """The To: value for an e-mail service's API: the name as it is (quoted as RFC 5322 needs,
    not RFC 2047-encoded: the service encodes the header it writes) and the wire address."""
    single = display_name(name)
    wire = wire_address(address)
    return str(Address(display_name=single, addr_spec=wire)) if single else wire


def message_id(key: str, domain: str) -> str:
    """A new Message-ID on the sender's domain: the issue key and 80 random bits, short enough that
    the header stays on one line (make_msgid's time and process id would fold it)."""
    return f"<{re.sub(r'[^A-Za-z0-9.-]', '', key)[:40] or 'issue'}.{secrets.token_hex(10)}@{domain}>"


def list_id(nl: NewsletterSettings) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in nl.title.lower()).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    return f"{one_line(nl.title)} <{slug or 'newsletter'}.{ascii_domain(nl.sender_domain)}>"


def build_message(
    rendered: RenderedIssue,
    nl: NewsletterSettings,
    *,
    to: str,
    token: str,
    now: datetime,
    subject_prefix: str = "",
    name: str | None = None,
) -> EmailMessage:
    html, text = rendered.personalise(email=to, token=token, name=nl.recipient_name(name))
    msg = EmailMessage(policy=POLICY if wire_address(to).isascii() else UTF8_POLICY)
    msg["From"] = _sender_field(nl)
    msg["To"] = to_field(to, name)
    if nl.reply_to:
        msg["Reply-To"] = nl.reply_to
    # Header values must never carry a line break or a control character: a subject could
    # otherwise add headers of its own.
    msg["Subject"] = one_line(subject_prefix + one_line(rendered.subject, MAX_SUBJECT))
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id(rendered.key, ascii_domain(nl.sender_domain))
    msg["List-ID"] = list_id(nl)
    unsubscribe = ascii_url(nl.unsubscribe_link(token))
    mailto = wire_address(nl.unsubscribe_mailto or nl.sender_address)
    # RFC 8058 one-click unsubscribe: an https URI that accepts a POST, plus a mailto fallback.
    msg["List-Unsubscribe"] = f"<{unsubscribe}>, <mailto:{mailto}?subject=unsubscribe>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["MIME-Version"] = "1.0"
    msg["Content-Type"] = "multipart/alternative"
    # Text first: clients show the last alternative they can display (RFC 2046 §5.1.4).
    msg.set_payload([_text_part(text, "plain"), _text_part(html, "html")])
    return msg


def display_name(name: str | None) -> str:
    """A subscriber's name as a header shows it: on one line (a name cannot add a header field)."""
    return " ".join((name or "").split())


def normalise_body(text: str) -> str:
    """A body as mail carries it: lines split on CR, LF or CRLF alike, ending with a line break."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


def _text_part(body: str, subtype: str) -> MIMEPart:
    """A UTF-8, quoted-printable text part. binascii's C encoder does the work of the email
    package's pure-Python one about ten times faster; it wraps lines at 76 characters and
    encodes trailing white space, as RFC 2045 §6.7 asks."""
    body = normalise_body(body)
    part = MIMEPart(policy=POLICY)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(binascii.b2a_qp(body.encode("utf-8"), istext=True).decode("ascii"))
    return part


# --- the fast path ----------------------------------------------------------------------------

CRLF = b"\r\n"
MAX_LINE = 76  # RFC 2045 §6.7 rule 5: encoded lines are at most 76 characters

# Slot kinds in an encoded body.
_TOKEN, _EMAIL, _EMAIL_HTML, _NAME, _NAME_HTML = 0, 1, 2, 3, 4

_LITERAL = [(33 <= b <= 126 and b != 61) or b in (9, 32) for b in range(256)]
_ESCAPED = [f"={b:02X}" for b in range(256)]


def _qp_line(line: str, *, ends_line: bool) -> list[str]:
    """One line of text (no line break) as quoted-printable lines, the last without its line
    break; every earlier one ends in a soft break. ``ends_line``: the line is followed by a hard
    line break, so trailing white space must be encoded (rule 3)."""
    data = line.encode("utf-8")
    tokens = [chr(b) if _LITERAL[b] else _ESCAPED[b] for b in data]
    if ends_line and data and data[-1] in (9, 32):
        tokens[-1] = _ESCAPED[data[-1]]
    # A line that begins with "." or "From " is left alone: SMTP dot-stuffs the former, and the
    # latter only matters to mbox files, which are not our transport.
    out: list[str] = []
    cur: list[str] = []
    width = 0
    for tok in tokens:
        if width + len(tok) > MAX_LINE - 1:  # leave room for the soft break's "="
            out.append("".join(cur) + "=")
            cur, width = [], 0
        cur.append(tok)
        width += len(tok)
    out.append("".join(cur))
    return out


_PLAIN = re.compile(r"[!-<>-~]{1,75}")  # printable ASCII but "=", no white space: literal as is


def qp_piece(text: str) -> bytes:
    """Quoted-printable for a piece of text that starts at column 0. ``\\n`` ends a line (a hard
    break, CRLF). A piece that does not end with a line break ends with a soft break, so whatever
    follows it starts at column 0 again."""
    if not text:
        return b""
    if _PLAIN.fullmatch(text):
        # The common case for a spliced value (a token, an address): nothing to escape or wrap.
        return text.encode("ascii") + b"=\r\n"
    lines = text.split("\n")
    out: list[str] = []
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        if last and line == "":
            break  # the piece ended with a line break
        enc = _qp_line(line, ends_line=not last)
        out.append("\r\n".join(enc) + ("=\r\n" if last else "\r\n"))
    return "".join(out).encode("ascii")


def dot_stuffed(piece: bytes) -> bytes:
    """``piece``, which starts at the beginning of a line, with every line that starts with a dot
    given a second one (RFC 5321 §4.5.2)."""
    if b"\r\n." in piece:  # looked for first: most pieces have no line to stuff, and a copy costs
        piece = piece.replace(b"\r\n.", b"\r\n..")
    return b"." + piece if piece.startswith(b".") else piece


END_OF_DATA = b".\r\n"  # the line that ends SMTP DATA (after the content's last CRLF)


def smtp_data(message: bytes) -> bytes:
    """A whole message (CRLF line ends, ending with CRLF) as SMTP DATA sends it: dot-stuffed and
    followed by the end-of-data line."""
    return dot_stuffed(message) + END_OF_DATA


def _pieces(text: str, marks: dict[str, int]) -> list[bytes | int]:
    """Split a body at the markers: encoded constant pieces and slot numbers."""
    out: list[bytes | int] = []
    rest = text
    while True:
        first = min(((rest.find(m), m) for m in marks if m in rest), default=None)
        if first is None:
            break
        at, mark = first
        if at:
            out.append(qp_piece(rest[:at]))
        out.append(marks[mark])
        rest = rest[at + len(mark) :]
    if rest:
        out.append(qp_piece(rest))
    return out


def _header_fields(raw: bytes) -> dict[str, bytes]:
    """The header fields of a serialised message by lower-cased name, each as its folded bytes
    with the final CRLF."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    fields: dict[str, bytes] = {}
    name = ""
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            fields[name] += line + CRLF
        else:
            name = line.split(b":", 1)[0].decode("ascii").lower()
            fields[name] = line + CRLF
    return fields


def fold_list_unsubscribe(url: str, mailto: str) -> bytes:
    """The List-Unsubscribe field, folded between its two URIs when long. The URIs are written
    as they are (RFC 2369 §2): mail clients look for ``<https:...>`` in the raw field."""
    first = f"List-Unsubscribe: <{url}>,"
    second = f"<mailto:{mailto}?subject=unsubscribe>"
    if len(first) + 1 + len(second) <= 78:
        return f"{first} {second}\r\n".encode("ascii")
    return f"{first}\r\n {second}\r\n".encode("ascii")


class MessageTemplate:
    """An issue's message, encoded once; :meth:`render` splices in one recipient."""

    def __init__(
        self,
        rendered: RenderedIssue,
        nl: NewsletterSettings,
        *,
        subject_prefix: str = "",
    ) -> None:
        self.rendered = rendered
        self.nl = nl
        self.subject_prefix = subject_prefix
        self.mailto = wire_address(nl.unsubscribe_mailto or nl.sender_address)
        self.envelope_from = wire_address(nl.sender_address)
        self._msgid_domain = ascii_domain(nl.sender_domain)
        self._date: tuple[datetime, bytes] | None = None
        # Message-IDs: the issue key and 64 random bits once per template, then a count (make_msgid
        # reads the clock, the process id and the random generator again for every message).
        self._msgid_prefix = f"<{rendered.key.replace(' ', '')}.{secrets.token_hex(8)}."
        self._msgid_count = itertools.count(1)
        # The reference message, built once with placeholder values, gives the constant header
        # fields exactly as the email package encodes them (RFC 2047 words, folding).
        ref = build_message(
            rendered,
            nl,
            to="x@example.org",
            token="x",
            now=datetime(2000, 1, 1).astimezone(),
            subject_prefix=subject_prefix,
        )
        fields = _header_fields(ref.as_bytes())
        self._from = fields["from"]
        self._reply_to = fields.get("reply-to", b"")
        self._subject = fields["subject"]
        self._list_id = fields["list-id"]
        self._post = fields["list-unsubscribe-post"]
        boundary = "===============" + secrets.token_hex(10) + "=="
        # The boundary contains "==", which quoted-printable never produces, so no body can
        # contain it (RFC 2046 §5.1.1).
        self._mime_head = (
            b"MIME-Version: 1.0\r\n"
            + f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'.encode("ascii")
        )
        delim = f"--{boundary}\r\n".encode("ascii")
        self._text_head = (
            delim + b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
        )
        self._html_head = (
            CRLF
            + delim
            + b'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
        )
        self._close = f"\r\n--{boundary}--\r\n".encode("ascii")
        self._text = _pieces(normalise_body(rendered.text), {TOKEN_MARK: _TOKEN, EMAIL_MARK: _EMAIL, NAME_MARK: _NAME})
        self._html = _pieces(
            normalise_body(rendered.html), {TOKEN_MARK: _TOKEN, EMAIL_MARK: _EMAIL_HTML, NAME_MARK: _NAME_HTML}
        )
        # The same pieces dot-stuffed once, for SMTP DATA: every piece starts at the beginning of a
        # line (header fields, and quoted-printable pieces, which end with a line break or a soft
        # one), so stuffing piece by piece gives exactly the stuffed whole, without a pass over
        # each ~40 KB message.
        self._text_stuffed = [p if isinstance(p, int) else dot_stuffed(p) for p in self._text]
        self._html_stuffed = [p if isinstance(p, int) else dot_stuffed(p) for p in self._html]

    @property
    def subject(self) -> str:
        return " ".join(f"{self.subject_prefix}{self.rendered.subject}".split())

    @property
    def list_id(self) -> str:
        return list_id(self.nl)

    def list_unsubscribe(self, token: str) -> str:
        """The List-Unsubscribe value for one recipient (RFC 2369, with RFC 8058's one-click)."""
        return f"<{ascii_url(self.unsubscribe_url(token))}>, <mailto:{self.mailto}?subject=unsubscribe>"

    def bodies(self, *, token: str, email: str, email_html: str, name: str, name_html: str) -> tuple[str, str]:
        """(text, html) with the per-recipient markers replaced by the given strings: a
        service's substitution tags, for the batch APIs."""
        r = self.rendered
        text = r.text.replace(TOKEN_MARK, token).replace(EMAIL_MARK, email).replace(NAME_MARK, name)
        html = r.html.replace(TOKEN_MARK, token).replace(EMAIL_MARK, email_html).replace(NAME_MARK, name_html)
        return text, html

    def recipient_name(self, name: str | None) -> str:
        """The text of ``recipient_name`` for a subscriber (their name, or name_fallback)."""
        return self.nl.recipient_name(name)

    def unsubscribe_url(self, token: str) -> str:
        return self.nl.unsubscribe_link(token)

    def _date_field(self, date: datetime) -> bytes:
        # A batch shares one moment: format it once.
        if self._date is None or self._date[0] != date:
            self._date = (date, b"Date: " + format_datetime(date).encode("ascii") + CRLF)
        return self._date[1]

    def new_message_id(self) -> str:
        return f"{self._msgid_prefix}{next(self._msgid_count)}@{self._msgid_domain}>"

    def render(self, *, to: str, token: str, date: datetime, message_id: str, name: str | None = None) -> bytes:
        """The whole message for one recipient (``name``: the subscriber's, if any), CRLF line
        ends. An address whose local part is not ASCII gets its To: field in UTF-8 (RFC 6532):
        such a message goes out only with SMTPUTF8. Raises ValueError for an address that cannot
        be written at all."""
        return self._assemble(to, token, date, message_id, name, smtp=False)

    def render_for_smtp(
        self, *, to: str, token: str, date: datetime, message_id: str, name: str | None = None
    ) -> bytes:
        """:meth:`render` as SMTP DATA sends it, equal to ``smtp_data(render(...))``: dot-stuffed,
        with the end-of-data line. Only the recipient's own pieces are stuffed here; the rest was
        stuffed once."""
        return self._assemble(to, token, date, message_id, name, smtp=True)

    def _assemble(self, to: str, token: str, date: datetime, message_id: str, name: str | None, *, smtp: bool) -> bytes:
        if not token.isascii():
            raise ValueError("an unsubscribe token must be ASCII")
        field = to_field(to, name)
        email = qp_piece(to)
        escaped = htmllib.escape(to)
        shown = self.nl.recipient_name(name)
        values = {
            _TOKEN: qp_piece(token),
            _EMAIL: email,
            _EMAIL_HTML: email if escaped == to else qp_piece(escaped),
            _NAME: qp_piece(shown),
            _NAME_HTML: qp_piece(htmllib.escape(shown)),
        }
        if smtp:
            values = {k: dot_stuffed(v) for k, v in values.items()}
        out = [
            self._from,
            b"To: " + (field.encode("ascii") if field.isascii() else field.encode("utf-8")) + CRLF,
            self._reply_to,
            self._subject,
            self._date_field(date),
            b"Message-ID: " + message_id.encode("ascii") + CRLF,
            self._list_id,
            fold_list_unsubscribe(ascii_url(self.unsubscribe_url(token)), self.mailto),
            self._post,
            self._mime_head,
            self._text_head,
        ]
        if smtp:
            # Header fields start with their name and folded lines with white space; only a
            # To: field folded by a name could in theory start a line with a dot.
            out[1] = dot_stuffed(out[1])
        out.extend(values[p] if isinstance(p, int) else p for p in (self._text_stuffed if smtp else self._text))
        out.append(self._html_head)
        out.extend(values[p] if isinstance(p, int) else p for p in (self._html_stuffed if smtp else self._html))
        out.append(self._close)
        if smtp:
            out.append(END_OF_DATA)
        return b"".join(out)
