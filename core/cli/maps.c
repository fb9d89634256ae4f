/* maps.c - STUB */
typedef int cli_maps_placeholder;
