"""TLS for the edge: the cluster's CA, certificates by ACME, and what edges are handed.

``bundle`` holds the types the control plane and the edges share; the CA,
the edge's certificate selection and the ACME orders live beside it.
"""
