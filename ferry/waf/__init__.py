"""The edge's web application firewall: ModSecurity v3 with the OWASP Core Rule Set.

``rules`` turns an app's ``WafConfig`` into the SecLanguage text the engine
loads (pure); the engine adapter, the edge's inspection and the events sit
beside it.
"""
