"""Corpus families about the request itself: protocol enforcement (920) and attacks (921),
methods (911), scanners (913), session fixation by id (943), multipart (922/200xxx),
JSON and XML bodies, odd encodings, repeated and oversized arguments, cookies.
"""

from __future__ import annotations

from collections.abc import Iterator

from bench.waf_corpus._build import (
    BROWSER_UA,
    CORPUS_HOST,
    Entry,
    chunked,
    form,
    multipart,
    q,
    request,
)

__all__ = ["protocol_families"]

_FORM = "application/x-www-form-urlencoded"


def _attacks(family: str, prefixes: list[str], cases: list[tuple[str, bytes]]) -> Iterator[Entry]:
    for label, raw in cases:
        yield Entry(f"{family}-{label}", family, "attack", raw, prefixes)


def enforcement() -> Iterator[Entry]:
    cases: list[tuple[str, bytes]] = [
        ("get-with-body", request("GET", "/", body=b"a=1", content_type=_FORM)),
        ("post-no-length", request("POST", "/submit", content_length=False)),
        ("range-reversed", request("GET", "/file.pdf", [("Range", "bytes=10-5")])),
        (
            "range-many",
            request("GET", "/v.mp4", [("Range", "bytes=0-1,2-3,4-5,6-7,8-9,10-11,12-13")]),
        ),
        (
            "request-range",
            request(
                "GET", "/doc.pdf", [("Request-Range", "bytes=0-1,2-3,4-5,6-7,8-9,10-11,12-13")]
            ),
        ),
        ("connection-conflict", request("GET", "/", [("Connection", "keep-alive, close")])),
        ("bad-url-encoding", request("GET", "/search?q=%zz%4")),
        ("double-encoding", request("GET", "/search?q=%2541%253Cscript%253E")),
        (
            "bad-body-encoding",
            request("POST", "/submit", body=b"a=%zz&b=%%%", content_type=_FORM),
        ),
        ("percent-u", request("GET", "/search?q=%u0027%u003cscript%u003e")),
        ("null-arg", request("GET", "/file?name=report.pdf%00.php")),
        ("ctrl-chars-arg", request("GET", "/x?a=%01%02%03%1b")),
        ("high-bytes-arg", request("GET", b"/x?a=\xff\xfe\xfd")),
        ("high-byte-header", request("GET", "/", [("X-Note", "caf\xe9 \xff")])),
        ("missing-accept", request("GET", "/", [("User-Agent", "curl/8.5")], defaults=False)),
        ("missing-ua", request("GET", "/", [("Accept", "*/*")], defaults=False)),
        ("empty-ua", request("GET", "/", [("User-Agent", ""), ("Accept", "*/*")], defaults=False)),
        (
            "empty-accept",
            request("GET", "/", [("Accept", ""), ("User-Agent", "curl/8.5")], defaults=False),
        ),
        ("length-no-type", request("POST", "/submit", body=b"a=1&b=2")),
        ("bad-content-type", request("POST", "/x", body=b"abc", content_type="application/x-evil")),
        (
            "charset-utf7",
            request("POST", "/x", body=b"a=1", content_type=_FORM + "; charset=utf-7"),
        ),
        ("protocol-1-2", request("GET", "/", protocol="HTTP/1.2")),
        ("protocol-3-0", request("GET", "/", protocol="HTTP/3.0")),
        ("ext-bak", request("GET", "/index.php.bak")),
        ("ext-sql", request("GET", "/backup/db.sql")),
        ("ext-config", request("GET", "/web.config")),
        ("backup-tilde", request("GET", "/index.php~")),
        ("backup-swp", request("GET", "/.index.php.swp")),
        ("header-proxy", request("GET", "/", [("Proxy", "http://evil.example:8080")])),
        ("header-lock-token", request("GET", "/", [("Lock-Token", "<opaquelocktoken:x>")])),
        ("header-content-range", request("GET", "/", [("Content-Range", "bytes 0-1/2")])),
        ("accept-odd", request("GET", "/", [("Accept-Encoding", "gzip\x01")])),
        ("abnormal-escape", request("GET", "/x?a=\\a\\b\\c")),
        ("method-track", request("TRACK", "/")),
        ("method-trace", request("TRACE", "/")),
        ("method-propfind", request("PROPFIND", "/", [("Depth", "1")])),
        ("method-debug", request("DEBUG", "/", [("Command", "stop-debug")])),
        (
            "method-put",
            request(
                "PUT", "/upload/shell.php", body=b"<?php phpinfo();", content_type="text/plain"
            ),
        ),
        ("method-delete", request("DELETE", "/api/items/1")),
        ("utf8-fullwidth", request("GET", "/search?q=%EF%BC%9Cscript%EF%BC%9E")),
        (
            "too-many-ranges-pdf",
            request("GET", "/a.pdf", [("Range", "bytes=0-,1-,2-,3-,4-,5-,6-")]),
        ),
        ("host-ip", request("GET", "/", host="203.0.113.10")),
        ("host-missing", request("GET", "/", host=None)),
        ("host-empty", request("GET", "/", host="")),
        (
            "x-up-devcap",
            request(
                "POST", "/x", [("x-up-devcap-post-charset", "utf-7")], b"a=1", content_type=_FORM
            ),
        ),
        (
            "content-encoding",
            request("POST", "/x", [("Content-Encoding", "gzip")], b"a=1", content_type=_FORM),
        ),
        ("http-1-0-host-ip", request("GET", "/", protocol="HTTP/1.0", host="10.0.0.1")),
        ("host-only", request("GET", "/", defaults=False)),
        ("host-twice", request("GET", "/", [("Host", CORPUS_HOST)])),
        ("absolute-userinfo", request("GET", f"http://user:pw@{CORPUS_HOST}/admin")),
        ("fragment-sent", request("GET", "/page?a=1#frag")),
    ]
    routable_not = {"host-ip", "host-missing", "host-empty", "http-1-0-host-ip"}
    # no CRS 3.3 rule looks at these; an edge that routes on the second Host or
    # passes the fragment on would still show up as a difference
    no_rule = {"host-twice", "fragment-sent"}
    for label, raw in cases:
        expect = ["911"] if label.startswith("method-") else ["920"]
        note = ""
        if label in routable_not:
            note = "Host is what is tested: the edge cannot route it"
        elif label in no_rule:
            expect, note = [], "no CRS 3.3 rule for this: nothing should match"
        yield Entry(
            f"protocol-enforcement-{label}",
            "protocol-enforcement",
            "attack",
            raw,
            expect,
            routable=label not in routable_not,
            note=note,
        )


def protocol_attack() -> Iterator[Entry]:
    smuggled = "x\r\n\r\nGET /admin HTTP/1.1\r\nHost: internal\r\n\r\n"
    cases = [
        ("smuggle-arg", request("GET", f"/x?a={q(smuggled)}")),
        ("smuggle-body", request("POST", "/x", body=form([("a", smuggled)]), content_type=_FORM)),
        ("split-setcookie", request("GET", "/redirect?to=%0d%0aSet-Cookie:%20a=b")),
        ("split-location", request("GET", "/r?url=%0d%0aLocation:%20http://evil.example")),
        ("split-html", request("GET", "/r?u=x%0d%0a%0d%0a<html>injected</html>")),
        (
            "split-length",
            request("GET", "/r?u=%0d%0aContent-Length:%200%0d%0a%0d%0aHTTP/1.1%20200"),
        ),
        ("newline-arg-name", request("GET", "/x?a%0d%0ab=1")),
        ("newline-get-arg", request("GET", "/x?a=line1%0aline2")),
        ("newline-filename", request("GET", "/foo%0d%0abar")),
        ("ldap", request("GET", "/login?user=" + q("*)(uid=*))(|(uid=*"))),
        ("hpp", request("GET", "/transfer?to=alice&amount=1&to=mallory")),
        (
            "te-and-cl",
            b"POST /x HTTP/1.1\r\nHost: "
            + CORPUS_HOST.encode()
            + b"\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "header-crlf",
            b"GET / HTTP/1.1\r\nHost: " + CORPUS_HOST.encode() + b"\r\nX-A: a\rInjected: 1\r\n\r\n",
        ),
        (
            "chunked-smuggle",
            b"POST /x HTTP/1.1\r\nHost: "
            + CORPUS_HOST.encode()
            + b"\r\nUser-Agent: t\r\nAccept: */*\r\nContent-Type: "
            + _FORM.encode()
            + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunked(b"a=1\r\n\r\nPOST /admin HTTP/1.1\r\nHost: internal\r\n\r\n", [5]),
        ),
    ]
    yield from _attacks("protocol-attack", ["921"], cases)


def scanners() -> Iterator[Entry]:
    agents = [
        "Nikto/2.1.6",
        "sqlmap/1.7.2#stable (https://sqlmap.org)",
        "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000001)",
        "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
        "w3af.org",
        "DirBuster-1.0-RC1",
        "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
        "WPScan v3.8.22 (https://wpscan.com/wordpress-security-scanner)",
        "Arachni/v1.5.1",
        "gobuster/3.6",
        "ZmEu",
        "Morfeus Fucking Scanner",
        "nuclei - open-source project (github.com/projectdiscovery/nuclei)",
        "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; OpenVAS)",
        "havij",
        "jaascois",
    ]
    for index, agent in enumerate(agents):
        raw = request("GET", "/", [("User-Agent", agent), ("Accept", "*/*")], defaults=False)
        yield Entry(f"scanner-ua-{index:03d}", "scanner", "attack", raw, ["913"])
    headers = [
        ("Acunetix-Product", "WVS/5.0"),
        ("X-Scanner", "Netsparker"),
        ("Acunetix-Scanning-agreement", "Third Party Scanning PROHIBITED"),
    ]
    for index, header in enumerate(headers):
        yield Entry(
            f"scanner-header-{index:03d}",
            "scanner",
            "attack",
            request("GET", "/", [header]),
            ["913"],
        )
    for index, path in enumerate(
        ["/nessustest", "/w00tw00t.at.ISC.SANS.DFind:)", "/nessus_is_probing_you_"]
    ):
        yield Entry(f"scanner-url-{index:03d}", "scanner", "attack", request("GET", path), ["913"])


def session_by_id() -> Iterator[Entry]:
    cases = [
        (
            "phpsessid-offsite",
            request(
                "GET", "/login?PHPSESSID=abc123def456", [("Referer", "http://evil.example/page")]
            ),
        ),
        ("jsessionid-no-referer", request("GET", "/login?jsessionid=ABCDEF0123")),
        (
            "aspsessionid-offsite",
            request("GET", "/?aspsessionid=XYZ", [("Referer", "https://attacker.example/")]),
        ),
        (
            "sid-form",
            request(
                "POST",
                "/login",
                [("Referer", "http://other.example/")],
                form([("session_id", "fixed123"), ("user", "bob")]),
                content_type=_FORM,
            ),
        ),
    ]
    yield from _attacks("session", ["943"], cases)


def multipart_family() -> Iterator[Entry]:
    shell, ctype = multipart(
        [("file", "shell.php", "application/x-php", b"<?php system($_GET['c']); ?>")]
    )
    charset, ctype2 = multipart(
        [("_charset_", None, None, b"utf-7"), ("a", None, None, b"+ADw-script+AD4-")]
    )
    part_cs, ctype3 = multipart([("a", None, "text/plain; charset=utf-7", b"+ADw-script+AD4-")])
    cte = (
        b'--B\r\nContent-Disposition: form-data; name="a"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        b"PHNjcmlwdD4=\r\n--B--\r\n"
    )
    unfinished = b'--B\r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue\r\n'
    bad_quote = (
        b'--B\r\nContent-Disposition: form-data; name="a"; filename="x"y.txt"\r\n\r\nv\r\n--B--\r\n'
    )
    lf_only = b'--B\nContent-Disposition: form-data; name="a"\n\nvalue\n--B--\n'
    sqli, ctype4 = multipart([("id", None, None, b"1' UNION SELECT password FROM users--")])
    xss_name, ctype5 = multipart(
        [("f", "<img src=x onerror=alert(1)>.png", "image/png", b"\x89PNG\r\n")]
    )
    traversal, ctype6 = multipart([("f", "../../../etc/passwd", "text/plain", b"x")])
    cases = [
        ("php-upload", request("POST", "/upload", body=shell, content_type=ctype)),
        ("charset-field", request("POST", "/upload", body=charset, content_type=ctype2)),
        ("part-charset", request("POST", "/upload", body=part_cs, content_type=ctype3)),
        (
            "part-cte",
            request("POST", "/upload", body=cte, content_type="multipart/form-data; boundary=B"),
        ),
        (
            "unfinished",
            request(
                "POST", "/upload", body=unfinished, content_type="multipart/form-data; boundary=B"
            ),
        ),
        (
            "bad-quote-filename",
            request(
                "POST", "/upload", body=bad_quote, content_type="multipart/form-data; boundary=B"
            ),
        ),
        (
            "lf-only",
            request(
                "POST", "/upload", body=lf_only, content_type="multipart/form-data; boundary=B"
            ),
        ),
        (
            "boundary-missing",
            request("POST", "/upload", body=lf_only, content_type="multipart/form-data"),
        ),
        (
            "boundary-quoted-odd",
            request(
                "POST",
                "/upload",
                body=cte,
                content_type='multipart/form-data; boundary="B"; boundary=C',
            ),
        ),
        ("sqli-field", request("POST", "/upload", body=sqli, content_type=ctype4)),
        ("xss-filename", request("POST", "/upload", body=xss_name, content_type=ctype5)),
        ("traversal-filename", request("POST", "/upload", body=traversal, content_type=ctype6)),
    ]
    yield from _attacks("multipart", ["922", "920", "200", "933", "942", "941", "930"], cases)


def bodies_and_encodings() -> Iterator[Entry]:
    xxe = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    json_cases = [
        (
            "json-invalid",
            request("POST", "/api", body=b'{"a": 1,,}', content_type="application/json"),
        ),
        (
            "json-nested-sqli",
            request(
                "POST",
                "/api",
                body=b'{"user":{"filter":["1\' OR 1=1--"]}}',
                content_type="application/json",
            ),
        ),
        (
            "json-key-xss",
            request(
                "POST",
                "/api",
                body=b'{"<script>alert(1)</script>": 1}',
                content_type="application/json",
            ),
        ),
        (
            "json-unicode-escape",
            request(
                "POST",
                "/api",
                body=b'{"q":"\\u003cscript\\u003ealert(1)\\u003c/script\\u003e"}',
                content_type="application/json",
            ),
        ),
        (
            "json-as-text",
            request(
                "POST", "/api", body=b'{"q":"<script>alert(1)</script>"}', content_type="text/plain"
            ),
        ),
        ("xml-xxe", request("POST", "/xml", body=xxe, content_type="text/xml")),
        (
            "xml-invalid",
            request("POST", "/xml", body=b"<a><b></a>", content_type="application/xml"),
        ),
        (
            "xml-xss",
            request(
                "POST",
                "/xml",
                body=b"<r><c>&lt;script&gt;alert(1)&lt;/script&gt;</c></r>",
                content_type="text/xml",
            ),
        ),
        (
            "xml-sqli",
            request(
                "POST",
                "/xml",
                body=b"<r><id>1' UNION SELECT 1,2--</id></r>",
                content_type="text/xml",
            ),
        ),
    ]
    yield from _attacks("bodies", ["200", "941", "942", "930", "920"], json_cases)
    encodings = [
        ("double-url-sqli", "/s?id=1%2527%2520OR%25201%253D1"),
        ("percent-u-xss", "/s?q=%u003cscript%u003ealert(1)%u003c/script%u003e"),
        ("overlong-slash", "/s?f=..%c0%af..%c0%afetc%c0%afpasswd"),
        ("overlong-dot", "/s?f=%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd"),
        ("mixed-case-sqli", "/s?id=1%20UnIoN%20SeLeCt%201,2"),
        ("mixed-case-xss", "/s?q=%3CsCrIpT%3Ealert(1)%3C/ScRiPt%3E"),
        ("null-in-sqli", "/s?id=1%00'%20OR%201=1--"),
        ("tabs-sqli", "/s?id=1%09OR%091=1"),
        ("newline-sqli", "/s?id=1%0aUNION%0aSELECT%0a1"),
        ("comment-sqli", "/s?id=1/*x*/OR/*x*/1=1"),
        ("plus-space-rce", "/s?cmd=;+cat+/etc/passwd"),
        ("html-entity-xss", "/s?q=%26%2360%3Bscript%26%2362%3Balert(1)"),
        ("hex-sqli", "/s?id=0x61646d696e%27%20or%201=1"),
        ("backslash-lfi", "/s?f=..%5c..%5c..%5cboot.ini"),
        ("utf16-xss", "/s?q=%FF%FE%3C%00s%00c%00r%00i%00p%00t%00%3E%00"),
        ("fullwidth-lt", "/s?q=%EF%BC%9Cimg%20src=x%20onerror=alert(1)%EF%BC%9E"),
        ("base64-php", "/s?c=" + q("eval(base64_decode('c3lzdGVtKCdpZCcpOw=='));")),
        ("semicolon-path", "/s;jsessionid=1?x=%3Cscript%3E"),
    ]
    for label, target in encodings:
        yield Entry(
            f"encoding-{label}",
            "encodings",
            "attack",
            request("GET", target),
            ["920", "921", "930", "932", "933", "941", "942", "943"],
        )


def arguments() -> Iterator[Entry]:
    many = "&".join(f"f{i}=v{i}" for i in range(300))
    repeated = "&".join(["id=1"] * 200)
    long_value = "a" * 20000
    long_uri = "/" + "x" * 7000
    big_cookie = "; ".join(f"c{i}={'z' * 40}" for i in range(100))
    tail_attack = form([("pad", "p" * 140000), ("id", "1' UNION SELECT password FROM users--")])
    cases: list[tuple[str, bytes, str]] = [
        ("many-args", request("GET", f"/list?{many}"), "benign"),
        ("repeated-args", request("GET", f"/list?{repeated}"), "benign"),
        ("long-arg", request("GET", f"/s?q={long_value}"), "benign"),
        ("long-uri", request("GET", long_uri), "benign"),
        ("big-cookie", request("GET", "/", [("Cookie", big_cookie)]), "benign"),
        ("long-arg-name", request("GET", f"/s?{'n' * 2000}=1"), "benign"),
        ("nested-brackets", request("GET", "/s?a[b][c][d]=1&a[]=2&a[]=3"), "benign"),
        ("empty-and-bare", request("GET", "/s?&&a=&b&=c&"), "benign"),
        (
            "over-body-limit-benign",
            request("POST", "/big", body=form([("pad", "p" * 200000)]), content_type=_FORM),
            "benign",
        ),
        (
            "over-body-limit-tail-sqli",
            request("POST", "/big", body=tail_attack, content_type=_FORM),
            "attack",
        ),
        (
            "repeated-sqli",
            request(
                "GET",
                "/s?" + "&".join(["id=1' OR '1'='1"] * 20).replace(" ", "+").replace("'", "%27"),
            ),
            "attack",
        ),
        (
            "cookie-sqli",
            request("GET", "/", [("Cookie", "uid=1' OR '1'='1; theme=dark")]),
            "attack",
        ),
        (
            "cookie-xss",
            request("GET", "/", [("Cookie", "pref=<script>alert(1)</script>")]),
            "attack",
        ),
        ("cookie-dollar", request("GET", "/", [("Cookie", "$Version=1; a=1; $Path=/")]), "attack"),
        ("cookie-name-sqli", request("GET", "/", [("Cookie", "1' or 1=1--=x")]), "attack"),
        (
            "cookie-twice",
            request("GET", "/", [("Cookie", "a=1"), ("Cookie", "b=<svg onload=alert(1)>")]),
            "attack",
        ),
        ("header-ua-sqli", request("GET", "/", [("X-Forwarded-For", "1' OR 1=1--")]), "attack"),
        (
            "header-ua-shellshock",
            request("GET", "/cgi-bin/status", [("X-Api", "() { :; }; /bin/bash -c 'id'")]),
            "attack",
        ),
        (
            "ua-shellshock",
            request(
                "GET",
                "/cgi-bin/x",
                [("User-Agent", "() { :;}; echo; /bin/cat /etc/passwd"), ("Accept", "*/*")],
                defaults=False,
            ),
            "attack",
        ),
        (
            "referer-fullwidth-xss",
            request(
                "GET",
                "/",
                [
                    (
                        "Referer",
                        "http://x.example/\uff1cscript\uff1ealert(1)\uff1c/script\uff1e".encode().decode(
                            "latin-1"
                        ),
                    )
                ],
            ),
            "attack",
        ),
        (
            "ua-padded-empty",
            b"GET / HTTP/1.1\r\nHost: "
            + CORPUS_HOST.encode()
            + b"\r\nUser-Agent: \t \r\nAccept: */*\r\n\r\n",
            "attack",
        ),
        (
            "padded-host-same-site-session-link",
            b"GET /login?PHPSESSID=abc123 HTTP/1.1\r\nHost: "
            + CORPUS_HOST.encode()
            + b"  \r\nUser-Agent: "
            + BROWSER_UA.encode()
            + b"\r\nAccept: */*\r\nReferer: https://"
            + CORPUS_HOST.encode()
            + b"/\r\n\r\n",
            "benign",
        ),
        (
            "loopback-exemption-probe",
            request(
                "GET",
                "/",
                [
                    ("User-Agent", "Apache/2.4.57 (internal dummy connection)"),
                    ("Cookie", "id=1' OR '1'='1"),
                ],
                defaults=False,
            ),
            "attack",
        ),
        (
            "referer-xss",
            request("GET", "/", [("Referer", "http://x.example/<script>alert(1)</script>")]),
            "attack",
        ),
    ]
    for label, raw, kind in cases:
        expect = [] if kind == "benign" or "over-body-limit" in label else ["9", "2"]
        note = (
            {
                "benign": "limits and repetition: benign",
                "attack": "the attack is past body_limit (inspected up to it): nothing matches",
            }[kind]
            if not expect
            else ""
        )
        yield Entry(f"args-{label}", "arguments", kind, raw, expect, note=note)


def protocol_families() -> Iterator[Entry]:
    yield from enforcement()
    yield from protocol_attack()
    yield from scanners()
    yield from session_by_id()
    yield from multipart_family()
    yield from bodies_and_encodings()
    yield from arguments()
