"""MCUCoder: the learned image codec of Strata's camera fleet.

Light on purpose: importing ``mcucoder``, ``mcucoder.bitstream`` or ``mcucoder.registry``
pulls in neither torch nor numpy (the ingest process only parses packets). The codec
itself is ``mcucoder.codec.Codec``.
"""

__version__ = "0.1.0"
