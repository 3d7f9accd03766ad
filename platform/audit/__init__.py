"""The audit log: who changed what, when, with the values before and after.

A leaf app: it knows users and strings such as ``device:cam-1``, never the models of the
apps whose changes it records, so every app may import it and it imports none of them.
"""
