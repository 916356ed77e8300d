"""The edge proxy: routes each request to the nearest healthy machine of its app."""

from ferry.proxy.native import prefer_native

NATIVE = prefer_native(__path__)
