"""The edge proxy: routes each request to the nearest healthy machine of its app."""
