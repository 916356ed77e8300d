"""Volumes on a host: ext4 images on loop devices (``loop_volumes``), the pure plan of
what to do with them (``plan``)."""
