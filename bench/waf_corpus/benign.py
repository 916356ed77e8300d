"""Benign traffic: browser page and asset loads, API calls, form posts, uploads, odd-but-legal HTTP.

Written to look like what real clients send (header sets of current browsers,
curl, mobile apps and SDKs). Expected to match nothing at paranoia 1; those
that do are listed in bench/waf_corpus/README.md with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator

from bench.waf_corpus._build import (
    BROWSER_UA,
    CORPUS_HOST,
    Entry,
    chunked,
    form,
    json_body,
    multipart,
    q,
    request,
)

__all__ = ["benign_families"]

_FORM = "application/x-www-form-urlencoded"
_NAV = [
    ("Accept-Encoding", "gzip, deflate, br"),
    ("Sec-Fetch-Dest", "document"),
    ("Sec-Fetch-Mode", "navigate"),
    ("Sec-Fetch-Site", "same-origin"),
    ("Upgrade-Insecure-Requests", "1"),
    ("Cookie", "_ga=GA1.1.123456789.1700000000; session=eyJ1c2VyIjoiYm9iIn0.ZXr4Qw.abc123"),
]
_PAGES = [
    "/",
    "/about",
    "/blog",
    "/blog/2024/05/hello-world",
    "/products",
    "/products/42",
    "/products/blue-shirt-xl",
    "/cart",
    "/checkout",
    "/account/settings",
    "/docs/getting-started",
    "/docs/api/v2/authentication",
    "/search?q=running+shoes",
    "/search?q=caf%C3%A9+au+lait",
    "/search?q=2%2B2%3D4",
    "/category/books?sort=price&order=asc&page=3",
    "/news?tag=python&tag=web",
    "/help/faq#shipping",
    "/en-us/pricing",
    "/careers/apply?job=1234",
    "/u/alice",
    "/feed.xml",
    "/sitemap.xml",
    "/robots.txt",
    "/login?next=%2Faccount",
    "/logout",
    "/events/2024-06-01",
    "/maps?lat=52.37&lng=4.89&z=12",
    "/watch?v=dQw4w9WgXcQ&t=42s",
    "/compare?ids=1,2,3",
]
_ASSETS = [
    ("/static/css/site.4f3a2b.css", "text/css,*/*;q=0.1", "style"),
    ("/static/js/app.91bc7e.js", "*/*", "script"),
    ("/static/js/vendor.chunk.js", "*/*", "script"),
    (
        "/images/logo.svg",
        "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
        "image",
    ),
    ("/images/hero@2x.jpg", "image/avif,image/webp,*/*;q=0.8", "image"),
    ("/favicon.ico", "image/avif,image/webp,*/*;q=0.8", "image"),
    ("/fonts/inter-var.woff2", "*/*", "font"),
    ("/static/img/icons/sprite.png", "image/png,*/*;q=0.8", "image"),
    ("/manifest.webmanifest", "*/*", "manifest"),
    ("/static/css/print.css?v=3", "text/css,*/*;q=0.1", "style"),
    ("/media/video/intro.mp4", "*/*", "video"),
    ("/apple-touch-icon.png", "*/*", "image"),
]
_API_GETS = [
    "/api/v1/users?limit=20&offset=40",
    "/api/v1/users/8f14e45f-ceea-467f-a0e6-3b7e0b9b2c11",
    "/api/v1/orders?status=shipped&since=2024-01-01T00:00:00Z",
    "/api/v1/search?q=" + q("red bicycle under $200"),
    "/api/v1/products?fields=id,name,price&sort=-created_at",
    "/api/v1/geo?bbox=4.7,52.2,5.1,52.5",
    "/api/v2/stats?from=1700000000&to=1700086400&granularity=1h",
    "/api/v1/items?filter[status]=active&filter[owner]=me",
    "/api/v1/me",
    "/api/v1/notifications?unread=true",
    "/healthz",
    "/metrics",
    "/api/v1/files/report-2024-Q1.pdf",
    "/api/v1/translate?text=" + q("Good morning, how are you?") + "&to=fr",
    "/api/v1/suggest?prefix=new+yo",
    "/graphql?query=" + q("{ user(id: 1) { name email } }"),
    "/api/v1/calendar?tz=Europe%2FAmsterdam&week=23",
    "/api/v1/weather?city=S%C3%A3o+Paulo",
    "/.well-known/openid-configuration",
    "/api/v1/export?format=csv&columns=a,b,c",
]
_API_CLIENTS = [
    [("User-Agent", "curl/8.5.0"), ("Accept", "*/*")],
    [
        ("User-Agent", "python-requests/2.31.0"),
        ("Accept-Encoding", "gzip, deflate"),
        ("Accept", "*/*"),
        ("Connection", "keep-alive"),
    ],
    [
        ("User-Agent", "okhttp/4.12.0"),
        ("Accept", "application/json"),
        ("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"),
    ],
    [
        ("User-Agent", "MyApp/3.2.1 (iPhone; iOS 17.4; Scale/3.00)"),
        ("Accept", "application/json"),
        ("Accept-Language", "nl-NL;q=1, en-NL;q=0.9"),
    ],
    [
        ("User-Agent", "Go-http-client/1.1"),
        ("Accept", "application/json"),
        ("X-Request-Id", "req-7f3e9a"),
    ],
]


def browser() -> Iterator[Entry]:
    for index, page in enumerate(_PAGES):
        headers = list(_NAV)
        if index % 3 == 0:
            headers.append(("Referer", f"https://{CORPUS_HOST}/"))
        if index % 4 == 1:
            headers.append(("If-None-Match", 'W/"5e1-2f4a9c"'))
        yield Entry(
            f"benign-page-{index:03d}", "benign-browser", "benign", request("GET", page, headers)
        )
    for index, (path, accept, dest) in enumerate(_ASSETS):
        headers = [
            ("User-Agent", BROWSER_UA),
            ("Accept", accept),
            ("Accept-Encoding", "gzip, deflate, br"),
            ("Referer", f"https://{CORPUS_HOST}/products/42"),
            ("Sec-Fetch-Dest", dest),
            ("Sec-Fetch-Mode", "no-cors"),
            ("If-Modified-Since", "Tue, 14 May 2024 10:00:00 GMT"),
        ]
        yield Entry(
            f"benign-asset-{index:03d}",
            "benign-browser",
            "benign",
            request("GET", path, headers, defaults=False),
        )


def api() -> Iterator[Entry]:
    for index, target in enumerate(_API_GETS):
        client = _API_CLIENTS[index % len(_API_CLIENTS)]
        raw = request("GET", target, client, defaults=False)
        yield Entry(f"benign-api-get-{index:03d}", "benign-api", "benign", raw)
    documents: list[object] = [
        {"name": "Blue shirt", "price": 19.99, "tags": ["summer", "cotton"]},
        {"email": "bob@example.com", "password": "correct horse battery staple"},
        {"query": "query { viewer { login repositories(first: 5) { nodes { name } } } }"},
        {"event": "order.created", "data": {"id": 1234, "total": "42.00", "currency": "EUR"}},
        {"items": [{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}], "coupon": "SUMMER24"},
        {"text": "Hello! Can we meet at 10:30 tomorrow? Thanks, Ann", "to": "+31612345678"},
        {"lat": 52.3702, "lng": 4.8952, "accuracy": 12.5},
        {"settings": {"theme": "dark", "language": "en", "notifications": False}},
        {"title": "Weekly report", "body": "Sales rose 5% week over week; see the attached chart."},
        {"ids": list(range(50))},
        {"name": "Zoë Ångström", "city": "Malmö", "note": "naïve café"},
        {"refresh_token": "def50200a1b2c3d4e5f6", "grant_type": "refresh_token"},
        {"comment": "Great product, would buy again :)", "rating": 5},
        {"filters": {"price": {"gte": 10, "lte": 100}, "brand": ["acme", "globex"]}},
        {"url": f"https://{CORPUS_HOST}/products/42", "title": "Blue shirt"},
    ]
    for index, document in enumerate(documents):
        method = "POST"
        target = f"/api/v1/resource/{index}"
        client = _API_CLIENTS[index % len(_API_CLIENTS)]
        raw = request(
            method,
            target,
            client,
            json_body(document),
            content_type="application/json",
            defaults=False,
        )
        yield Entry(f"benign-api-json-{index:03d}", "benign-api", "benign", raw)
    rest = [
        ("PUT", "/api/v1/items/7", json_body({"name": "renamed"})),
        ("PATCH", "/api/v1/items/7", json_body({"done": True})),
        ("DELETE", "/api/v1/items/7", b""),
    ]
    for index, (method, target, body) in enumerate(rest):
        raw = request(
            method,
            target,
            _API_CLIENTS[1],
            body,
            content_type="application/json" if body else None,
            defaults=False,
        )
        yield Entry(
            f"benign-api-rest-{index:03d}",
            "benign-api",
            "benign",
            raw,
            note="PUT/PATCH/DELETE are outside CRS 3.3's default allowed methods (911100)",
        )


def forms() -> Iterator[Entry]:
    posts = [
        [("username", "alice"), ("password", "s3cret-Passw0rd"), ("remember", "on")],
        [("email", "bob@example.com"), ("name", "Bob Smith"), ("newsletter", "1")],
        [
            ("name", "Carol"),
            ("email", "carol@example.org"),
            ("message", "Hi, I would like to know more about your pricing plans. Thanks!"),
        ],
        [("q", "weekend trips"), ("from", "2024-06-01"), ("to", "2024-06-03"), ("guests", "2")],
        [
            ("address", "221B Baker Street"),
            ("city", "London"),
            ("zip", "NW1 6XE"),
            ("country", "GB"),
        ],
        [("card_name", "Dana Doe"), ("amount", "12.50"), ("currency", "EUR")],
        [("comment", "Nice write-up, thanks for sharing."), ("post_id", "981")],
        [("title", "Meeting notes"), ("body", "Agenda: budget, hiring, roadmap for Q3.")],
        [
            ("grant_type", "authorization_code"),
            ("code", "SplxlOBeZQQYbYS6WxSbIA"),
            ("redirect_uri", "https://client.example/cb"),
            ("client_id", "s6BhdRkqt3"),
        ],
        [("search", "size 10 boots"), ("color", "brown")],
        [("tags", "python,web,http"), ("visibility", "public")],
        [("first", "Émile"), ("last", "Zola"), ("lang", "fr")],
        [("phone", "+1 (555) 010-9999"), ("best_time", "after 5pm")],
        [("feedback", "The app crashes when I rotate my phone, please fix"), ("version", "3.2.1")],
        [("step", "2"), ("plan", "pro"), ("seats", "5"), ("coupon", "")],
        [("csrf_token", "a8f5f167f44f4964e6c998dee827110c"), ("action", "save")],
        [("query", "how to cook rice"), ("safe", "active")],
        [("bio", "Engineer, runner, coffee drinker."), ("website", "https://alice.example")],
        [("rating", "4"), ("review", "Solid build quality and fast delivery.")],
        [
            ("date", "2024-05-20"),
            ("time", "14:30"),
            ("people", "4"),
            ("note", "window seat please"),
        ],
    ]
    for index, pairs in enumerate(posts):
        headers = [
            ("Origin", f"https://{CORPUS_HOST}"),
            ("Referer", f"https://{CORPUS_HOST}/form"),
            ("Cookie", "session=eyJ1c2VyIjoiYm9iIn0.ZXr4Qw.abc123"),
        ]
        raw = request("POST", f"/forms/{index}", headers, form(pairs), content_type=_FORM)
        yield Entry(f"benign-form-{index:03d}", "benign-forms", "benign", raw)
    for index, pairs in enumerate(posts[:10]):
        query = "&".join(f"{q(k)}={q(v)}" for k, v in pairs)
        yield Entry(
            f"benign-form-get-{index:03d}",
            "benign-forms",
            "benign",
            request("GET", f"/results?{query}", [("Referer", f"https://{CORPUS_HOST}/")]),
        )


def uploads() -> Iterator[Entry]:
    png = (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
        b"\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    )
    files = [
        ("avatar.png", "image/png", png),
        ("photo.jpg", "image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01"),
        ("report.pdf", "application/pdf", b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"),
        ("notes.txt", "text/plain", b"Shopping list:\n- milk\n- eggs\n- bread\n"),
        ("data.csv", "text/csv", b"id,name,amount\n1,Ann,10.50\n2,Ben,7.25\n"),
        ("archive.zip", "application/zip", b"PK\x03\x04\x14\x00\x00\x00\x08\x00"),
        (
            "slides.pptx",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            b"PK\x03\x04\x14\x00\x06\x00",
        ),
        ("song.mp3", "audio/mpeg", b"ID3\x04\x00\x00\x00\x00\x00\x00"),
        ("config.json", "application/json", b'{"debug": false, "level": 3}'),
        (
            "resume.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            b"PK\x03\x04\x14\x00",
        ),
        ("big.bin", "application/octet-stream", bytes(range(256)) * 64),
        ("Holiday photo 2024 (1).jpeg", "image/jpeg", b"\xff\xd8\xff\xdb\x00\x43\x00"),
    ]
    for index, (name, ctype, data) in enumerate(files):
        body, content_type = multipart(
            [("description", None, None, b"My file"), ("file", name, ctype, data)]
        )
        yield Entry(
            f"benign-upload-{index:03d}",
            "benign-uploads",
            "benign",
            request(
                "POST",
                "/upload",
                [("Origin", f"https://{CORPUS_HOST}")],
                body,
                content_type=content_type,
            ),
        )


def odd_but_legal() -> Iterator[Entry]:
    host = CORPUS_HOST.encode()
    chunked_post = (
        b"POST /api/v1/events HTTP/1.1\r\nHost: " + host + b"\r\nUser-Agent: curl/8.5.0\r\n"
        b"Accept: */*\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked(b'{"a": 1, "b": 22}', [10])
    )
    cases = [
        (
            "options-preflight",
            request(
                "OPTIONS",
                "/api/v1/items",
                [
                    ("Origin", "https://other.example"),
                    ("Access-Control-Request-Method", "POST"),
                    ("Access-Control-Request-Headers", "content-type"),
                ],
            ),
        ),
        ("head", request("HEAD", "/index.html")),
        ("range-valid", request("GET", "/media/video/intro.mp4", [("Range", "bytes=0-1023")])),
        (
            "conditional",
            request("GET", "/", [("If-Modified-Since", "Wed, 21 Oct 2015 07:28:00 GMT")]),
        ),
        ("http-1-0", request("GET", "/", protocol="HTTP/1.0")),
        ("chunked-json", chunked_post),
        ("keep-alive", request("GET", "/", [("Connection", "keep-alive")])),
        ("absolute-form", request("GET", f"http://{CORPUS_HOST}/about")),
        (
            "header-case",
            b"GET / HTTP/1.1\r\nhost: "
            + host
            + b"\r\nuser-agent: "
            + BROWSER_UA.encode()
            + b"\r\naccept: text/html\r\n\r\n",
        ),
        (
            "header-spaces",
            b"GET / HTTP/1.1\r\nHost:   "
            + host
            + b"  \r\nUser-Agent: curl/8.5.0\r\n"
            + b"Accept:\t*/*\r\n\r\n",
        ),
        ("dnt-gpc", request("GET", "/", [("DNT", "1"), ("Sec-GPC", "1")])),
        ("xhr", request("GET", "/api/v1/me", [("X-Requested-With", "XMLHttpRequest")])),
        (
            "websocket-upgrade-probe",
            request("GET", "/health", [("Cache-Control", "no-cache"), ("Pragma", "no-cache")]),
        ),
        ("empty-post-form", request("POST", "/ping", body=b"", content_type=_FORM)),
        (
            "expect-continue",
            request(
                "POST",
                "/api/v1/bulk",
                [("Expect", "100-continue")],
                json_body({"rows": [[i, f"row {i}"] for i in range(100)]}),
                content_type="application/json",
            ),
        ),
        (
            "json-empty-object",
            request("POST", "/api/v1/ping", body=b"{}", content_type="application/json"),
        ),
        (
            "webhook-github",
            request(
                "POST",
                "/hooks/github",
                [
                    ("X-GitHub-Event", "push"),
                    ("X-Hub-Signature-256", "sha256=6a2f0e5b2c1d"),
                    ("User-Agent", "GitHub-Hookshot/abc123"),
                ],
                json_body(
                    {"ref": "refs/heads/main", "commits": [{"message": "Fix typo in README"}]}
                ),
                content_type="application/json",
                defaults=False,
                host=CORPUS_HOST,
            ),
        ),
        ("percent-encoded-path", request("GET", "/files/My%20Document%20(final).pdf")),
        ("unicode-path", request("GET", "/wiki/%E6%97%A5%E6%9C%AC")),
        (
            "long-but-normal-query",
            request("GET", "/s?" + "&".join(f"utm_{k}=v{k}" for k in range(30))),
        ),
        (
            "accept-language-long",
            request(
                "GET", "/", [("Accept-Language", "de-CH,de;q=0.9,fr-CH;q=0.8,fr;q=0.7,en;q=0.6")]
            ),
        ),
    ]
    for label, raw in cases:
        yield Entry(f"benign-http-{label}", "benign-http", "benign", raw)


_SEARCHES = [
    "running shoes",
    "best pizza near me",
    "weather tomorrow",
    "python list comprehension",
    "how to tie a tie",
    "cheap flights to lisbon",
    "2024 election results",
    "banana bread recipe",
    "USB-C cable 2m",
    "what is 15% of 80",
    "Dr. Who season 3",
    "rock & roll hall of fame",
    "C# vs Java",
    "email@example.com",
    "10:30 am to pm",
    "New York -> Boston train",
    "size: XL",
    "50/50 raffle",
    "tom's diner",
    "#hashtag trends",
    "!important css",
    "1 + 1",
    "price < 100",
    "Mötley Crüe",
    "東京 天気",
    "naïve bayes",
    "rust async await",
    "git rebase -i",
    "$5 coffee",
    "[draft] proposal",
]
_COMMENTS = [
    "Thanks for the article, it helped me a lot.",
    "I tried this recipe yesterday and it was delicious!",
    "Could you add a section about error handling?",
    "Great photos. Where was the second one taken?",
    "Shipping took 3 days, which is fine.",
    "Is there a student discount available?",
    "The link in paragraph two is broken.",
    "Looking forward to the next episode :)",
    "My order #12345 hasn't arrived yet, can you check?",
    "Works on Firefox 125 but not on Safari 17.",
    "Please add dark mode, my eyes will thank you.",
    "Five stars - would recommend to friends.",
    "How does this compare with the previous model?",
    "Can I pay with PayPal or only by card?",
    "See you at the meetup next Thursday!",
]


def searches() -> Iterator[Entry]:
    for index, term in enumerate(_SEARCHES):
        yield Entry(
            f"benign-search-{index:03d}",
            "benign-browser",
            "benign",
            request("GET", f"/search?q={q(term)}&lang=en", list(_NAV)),
        )
    for index, text in enumerate(_COMMENTS):
        body = form([("author", "Sam"), ("comment", text), ("post", str(100 + index))])
        yield Entry(
            f"benign-comment-{index:03d}",
            "benign-forms",
            "benign",
            request(
                "POST",
                "/comments",
                [("Origin", f"https://{CORPUS_HOST}")],
                body,
                content_type=_FORM,
            ),
        )
    for index in range(15):
        client = _API_CLIENTS[index % len(_API_CLIENTS)]
        target = f"/api/v1/accounts/{1000 + index}/invoices/{index * 7}?expand=lines"
        yield Entry(
            f"benign-api-path-{index:03d}",
            "benign-api",
            "benign",
            request("GET", target, client, defaults=False),
        )


def benign_families() -> Iterator[Entry]:
    yield from browser()
    yield from searches()
    yield from api()
    yield from forms()
    yield from uploads()
    yield from odd_but_legal()
