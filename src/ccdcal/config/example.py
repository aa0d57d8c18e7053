"""The example configuration: every key with its default (``ccdcal info --example-config``)."""

EXAMPLE_TOML = """\
# ccdcal configuration of a night. Every section and key is optional: leave out what you
# do not change. The values below are the defaults.

[keywords]
# Header keywords tried in order; the first present wins (for imagetyp: the first whose
# value names a known type). A list replaces the default list.
imagetyp = ["IMAGETYP", "OBSTYPE", "FRAMETYP", "FRAME"]
exptime = ["EXPTIME", "EXPOSURE", "ITIME", "EXP_TIME", "DARKTIME"]
filter = ["FILTER", "FILTNAME", "FILTNAM", "INSFLNAM", "FILTERID", "FILTER1", "FILTER2",
          "INSFILTE", "FILT"]  # flats without any: the filter in OBJECT ("V twil flat")
object = ["OBJECT", "OBJNAME", "TARGNAME"]
gain = ["GAIN", "EGAIN", "CCDSENS", "GAINE", "AGAIN_01"]           # e-/ADU
gain_unsure = ["CCDGAIN", "DETGAIN"]  # e-/ADU on some cameras only: used where the flats agree
rdnoise = ["RDNOISE", "READNOIS", "RON", "READNOISE", "ARDNS_01"]  # e-
saturation = ["SATURATE", "SATLEVEL", "MAXLIN", "DATAMAX"]         # ADU; default: the ADC's
                                                                   # ceiling where reached
date = ["DATE-OBS", "DATE"]
time = ["TIME-OBS", "UTC-OBS", "UTCSTART", "UT"]  # joined to a date that has no time

[types]
# Image-type values beyond the built-in ones (case, spaces, _ and - do not matter), and
# their kind: bias, dark, flat, light, or unknown to leave such frames out.
# "Twilight Sky" = "flat"
# "FOCUS" = "unknown"

# Per-file corrections, applied in order after the header classification; every rule
# that matches applies (a later one wins). match: globs on "path" (relative path or file
# name) and/or header keywords; set: kind, filter, object, exptime, gain, rdnoise,
# saturation.
# [[rules]]
# match = { OBJECT = "*twil flat*" }
# set = { kind = "flat" }
# [[rules]]
# match = { path = "flat/*", OBJECT = "VR *" }
# set = { filter = "VR" }

[detector]
# gain = 4.95          # e-/ADU, or "measured" (from pairs of flats); default the header's
# rdnoise = 6.5        # e-, or "measured" (from pairs of biases); default the header's
# saturation = 60000   # ADU; default from the header
# bias_level = 1000    # ADU of the raw frames: the level no photon made, for the photon
#                      # noise where no master bias, bias-holding dark or overscan says it
# biassec = "[1388:1432,1:1370]"  # FITS section (1-based, inclusive, x first); default BIASSEC
# trimsec = "[18:1382,1:1370]"    # default TRIMSEC; "none" for either: ignore the header's
overscan = "median"    # none, mean, median, rows (one value per line), poly
overscan_order = 1     # polynomial order for "poly"
overscan_sigma = 3.0   # clipping of the overscan estimate
readout_axis = "auto"  # auto (along the overscan strip), x, y

# How each kind is combined: method = mean, median or sum; scale = none, median or mean;
# reject = none, sigclip (low, high, maxiters, center, spread), minmax (nlow, nhigh, rule),
# pclip (low, high percentiles), winsorized (low, high, maxiters), ccdclip (gain, read_noise,
# snoise, low, high, maxiters), esd (alpha, max_outliers), varclip (low, high, maxiters,
# snoise), iraf-pclip (pclip, low, high), linfit (low, high, maxiters), medsig (low,
# high), avsigclip (low, high, maxiters, center). sigma = n sets low and high.
[combine.bias]
method = "mean"
scale = "none"
reject = "esd"
alpha = 0.05
max_outliers = 0.3

[combine.dark]
method = "mean"
scale = "none"
reject = "esd"
alpha = 0.05
max_outliers = 0.3

[combine.flat]
method = "median"
scale = "median"
reject = "none"

[combine.light]
method = "mean"
scale = "none"
zero = "median"      # additive offsets to a common sky level
weights = "frame"    # inverse median variance of each frame
exposures = "separate"  # lights of other exposure times: separate stacks, or "scale" them
reject = "auto"      # each light's own variance (varclip), else ccdclip, else a MAD clip
low = 3.0
high = 3.0
maxiters = 5

[dark]
match = "nearest"  # nearest (same exposure, else nearest scaled), exact, scale (longest)

[flat]
min_response = 0.5  # master-flat pixels below this are flagged BAD

[cosmic]
method = "none"     # none or lacosmic (L.A.Cosmic through astroscrappy)
# sigclip = 4.5
# sigfrac = 0.3
# objlim = 5.0
# niter = 4
# clean = false

[register]
# Align the lights of each stack before combining them (frames that all move less than
# 0.05 px are stacked as they are).
method = "auto"            # auto (stars, else WCS), stars, wcs, none (pixel on pixel)
reference = "best"         # best (sharpest among those with most stars) or a file name
transform = "similarity"   # shift, similarity (shift, rotation, scale), affine
interpolation = "lanczos3" # lanczos3, bicubic, bilinear
grid = "reference"         # reference, union, intersection
threshold = 5.0            # star detection, in sky sigma

[select]
# Leave out lights far from their stack's medians; false: no limit.
max_fwhm = 1.5        # FWHM above 1.5 x the median
min_stars = 0.5       # fewer stars than half the median count
min_throughput = 0.5  # stars fainter than half the median (clouds)
"""
