"""sealcard.transport: layer 1, bytes to and from a card.

`Connection` is anything with `send_and_receive(apdu) -> (data, sw)`;
`pcsc` is the one adapter that imports pyscard; `protocol` stacks command
chaining or extended length and GET RESPONSE below the command layer.
"""
