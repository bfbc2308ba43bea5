"""SMS: the message store and its state machine, the persistent outbound queue, gateways (SMPP
3.4 to an SMSC, SIP MESSAGE through the edge), inbound messages and the opt-out list."""
