#include <stdio.h>
int main(void) { fputs("catdog: not implemented yet\n", stderr); return 1; }
