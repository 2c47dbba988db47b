"""The file suffixes augkit takes for images when it lists a folder.

Apart from the decoder so that discovery, which only lists names, does not import it.
The decoder does not consult them: it reads what the bytes are, whatever the name says.
"""

IMAGE_SUFFIXES = frozenset(".jpg .jpeg .jpe .jfif .png .bmp .tif .tiff .webp .gif".split())
