/* A Windows program for the remote-control test under Wine (conformance/tests/windows.rs): one
 * window over the whole screen, painted in four known quadrants, that prints on its standard
 * output what reaches it, one line each: "ready W H" once shown, "click X Y" for each left
 * button press (screen pixels), "char XXXX" for each character typed (UTF-16, hex), "down VK"
 * for each key pressed (virtual key, hex, then " ctrl" and " shift" when those are down) and
 * "up VK" for each let go of. With the argument "moving" (scripts/bench.sh) the picture changes on
 * every frame instead: stripes scrolling sideways, as a video or a scrolled page would. */
#include <stdio.h>
#include <string.h>
#include <windows.h>

/* Top left, top right, bottom left, bottom right (as the Linux desktop test paints them). */
static const COLORREF QUADRANTS[4] = {
    RGB(0xdc, 0x1e, 0x1e), RGB(0x1e, 0xc8, 0x28), RGB(0x14, 0x28, 0xd2), RGB(0xfa, 0xfa, 0xfa)};

/* Where the stripes are when moving; -1 when still. */
static int offset = -1;

static void paint_stripes(HDC dc, RECT all) {
    for (int x = 0; x < all.right; x += 8) {
        RECT stripe = {x, 0, x + 8, all.bottom};
        int v = ((x + offset) * 3) & 0xff;
        HBRUSH brush = CreateSolidBrush(RGB(v, 255 - v, (v * 7) & 0xff));
        FillRect(dc, &stripe, brush);
        DeleteObject(brush);
    }
}

static LRESULT CALLBACK on_message(HWND window, UINT message, WPARAM w, LPARAM l) {
    switch (message) {
    case WM_TIMER:
        offset += 8;
        InvalidateRect(window, NULL, FALSE);
        return 0;
    case WM_PAINT: {
        PAINTSTRUCT ps;
        RECT all, quadrant;
        HDC dc = BeginPaint(window, &ps);
        GetClientRect(window, &all);
        if (offset >= 0) {
            paint_stripes(dc, all);
            EndPaint(window, &ps);
            return 0;
        }
        for (int i = 0; i < 4; i++) {
            quadrant.left = (i % 2) * all.right / 2;
            quadrant.top = (i / 2) * all.bottom / 2;
            quadrant.right = quadrant.left + all.right / 2;
            quadrant.bottom = quadrant.top + all.bottom / 2;
            HBRUSH brush = CreateSolidBrush(QUADRANTS[i]);
            FillRect(dc, &quadrant, brush);
            DeleteObject(brush);
        }
        EndPaint(window, &ps);
        return 0;
    }
    case WM_LBUTTONDOWN:
        printf("click %d %d\n", (short)LOWORD(l), (short)HIWORD(l));
        fflush(stdout);
        return 0;
    case WM_KEYDOWN:
    case WM_SYSKEYDOWN:
        printf("down %02x%s%s\n", (unsigned)w, GetKeyState(VK_CONTROL) < 0 ? " ctrl" : "",
               GetKeyState(VK_SHIFT) < 0 ? " shift" : "");
        fflush(stdout);
        return 0;
    case WM_KEYUP:
    case WM_SYSKEYUP:
        printf("up %02x\n", (unsigned)w);
        fflush(stdout);
        return 0;
    case WM_CHAR:
        printf("char %04x\n", (unsigned)w);
        fflush(stdout);
        return 0;
    case WM_DESTROY:
        PostQuitMessage(0);
        return 0;
    }
    return DefWindowProcW(window, message, w, l);
}

int main(int argc, char **argv) {
    WNDCLASSW class = {0};
    class.lpfnWndProc = on_message;
    class.hInstance = GetModuleHandleW(NULL);
    class.lpszClassName = L"udc-canvas";
    class.hCursor = LoadCursorW(NULL, (LPCWSTR)IDC_ARROW);
    RegisterClassW(&class);
    int width = GetSystemMetrics(SM_CXSCREEN), height = GetSystemMetrics(SM_CYSCREEN);
    HWND window = CreateWindowExW(WS_EX_TOPMOST, L"udc-canvas", L"udc canvas", WS_POPUP | WS_VISIBLE,
                                  0, 0, width, height, NULL, NULL, class.hInstance, NULL);
    if (!window)
        return 1;
    if (argc > 1 && strcmp(argv[1], "moving") == 0) {
        offset = 0;
        SetTimer(window, 1, 15, NULL);
    }
    SetForegroundWindow(window);
    SetFocus(window);
    UpdateWindow(window);
    printf("ready %d %d\n", width, height);
    fflush(stdout);
    MSG message;
    while (GetMessageW(&message, NULL, 0, 0) > 0) {
        TranslateMessage(&message);
        DispatchMessageW(&message);
    }
    return 0;
}
