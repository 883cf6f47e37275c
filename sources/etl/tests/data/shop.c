/* Source of shop.pdb, the PDB fixture of tests/symbols.rs. Built with:
 *   clang-14 --target=x86_64-pc-windows-msvc -O0 -g -gcodeview -c shop.c -o shop.obj
 *   rust-lld -flavor link /nologo /debug /entry:mainCRTStartup /subsystem:console \
 *     /nodefaultlib /out:shop.exe /pdb:shop.pdb /pdbaltpath:shop.pdb shop.obj
 * RVAs (from /map): checkout 0x1000, cart_total 0x1010, helper 0x1060,
 * mainCRTStartup 0x1080. shop.exe's RSDS record: GUID bytes
 * b9 7b 5b 0d 44 d2 8e f2 4c 4c 44 20 50 44 42 2e, age 1, "shop.pdb". */
int checkout(int x) { return x * 3 + 1; }
static int helper(int x) { return checkout(x) - 2; }
int cart_total(int n) { int t = 0; for (int i = 0; i < n; i++) t += helper(i); return t; }
int mainCRTStartup(void) { return cart_total(5); }
