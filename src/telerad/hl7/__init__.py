"""HL7 v2 codecs, pure: MLLP framing, ER7 parsing, ACKs, orders in (ORM^O01, OMI^O23).

No database, no sockets, no threads: the MLLP listener (``telerad.gateway``) and the ORU
delivery channel (``telerad.delivery``) call these functions at their edges.
"""
