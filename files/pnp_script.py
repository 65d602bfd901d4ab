#!/usr/bin/env python3
"""Runs in Guestshell at the end of provisioning; its output is stored in the router's record.

Replace with your own. The `cli` module is Guestshell's bridge to IOS-XE.
"""
try:
    from cli import cli
except ImportError:  # outside a router
    def cli(cmd):
        return f"(not on a router) {cmd}"

print(cli("show version | include Version|uptime"))
print(cli("show license udi"))
