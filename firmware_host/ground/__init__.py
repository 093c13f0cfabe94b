"""Ground-system interface: CCSDS Space Packets with a PUS-C secondary header
(housekeeping TM[3,25], events TM[5,1..4]) and the XTCE database that
describes them (docs/ground.md)."""
