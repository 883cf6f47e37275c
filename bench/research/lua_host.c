/* The research bench's Lua program: runs the script files given on the
 * command line in one state with the standard libraries. */
#include <stdio.h>
#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

int main(int argc, char **argv) {
    lua_State *L = luaL_newstate();
    if (!L) return 2;
    luaL_openlibs(L);
    int status = 0;
    for (int i = 1; i < argc && status == 0; i++) {
        status = luaL_dofile(L, argv[i]);
        if (status) fprintf(stderr, "%s\n", lua_tostring(L, -1));
    }
    lua_close(L);
    return status ? 1 : 0;
}
