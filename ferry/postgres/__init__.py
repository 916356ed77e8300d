"""Postgres on Ferry: the image (``image``, ``recipe``, ``oci_layout``) and what runs in it
(``entrypoint``, ``patroni_config``). See docs/postgres.md."""
