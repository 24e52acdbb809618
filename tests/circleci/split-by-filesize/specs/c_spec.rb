small c
