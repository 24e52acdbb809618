small a
