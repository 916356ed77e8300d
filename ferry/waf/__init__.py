"""The edge's web application firewall: ModSecurity v3 with the OWASP Core Rule Set.

``rules`` turns an app's ``WafConfig`` into the SecLanguage text the engine
loads (pure); ``engine`` is the adapter over libmodsecurity (the
``RuleEngine`` seam, ``ModSecurityCore``, ``InlineEngine``); ``workers`` and
``worker`` run it in processes beside the edge, since the engine holds the
GIL while it evaluates. The edge's side (which apps, one request's check,
events, counters) is in ``ferry.proxy.waf_*``; users' docs in docs/waf.md.
"""
