// Image and compression codecs: libjpeg-turbo, libpng, zlib (Debian packages).
#include <stdio.h>
#include <zlib.h>
#include <jpeglib.h>
#include <png.h>
#include <turbojpeg.h>
