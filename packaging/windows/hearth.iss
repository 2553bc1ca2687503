; Inno Setup 6 script for Hearth: a per-user install (no admin rights) of dist\Hearth\,
; Start menu entry, optional desktop shortcut, and "Open with Hearth" for .gguf files.
; Not built in CI (Linux only). Build on Windows after PyInstaller (see packaging/README.md):
;   iscc /DAppVersion=0.1.0 packaging\windows\hearth.iss   ->  dist\Hearth-0.1.0-setup.exe
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif

[Setup]
; Never change AppId: it is how upgrades find the installed copy.
AppId={{2854D0C9-D8BF-4E1A-85FB-4A9D0673C293}
AppName=Hearth
AppVersion={#AppVersion}
AppPublisher=Hearth
DefaultDirName={localappdata}\Programs\Hearth
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
ChangesAssociations=yes
OutputDir=..\..\dist
OutputBaseFilename=Hearth-{#AppVersion}-setup
SetupIconFile=..\build\hearth.ico
UninstallDisplayIcon={app}\Hearth.exe
Compression=lzma2/ultra64
SolidCompression=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
; Close a running Hearth before replacing its files.
CloseApplications=yes

[Tasks]
Name: "desktopicon"; Description: "Create a desktop shortcut"; Flags: unchecked

[Files]
Source: "..\..\dist\Hearth\*"; DestDir: "{app}"; Flags: recursesubdirs createallsubdirs ignoreversion

[Icons]
Name: "{autoprograms}\Hearth"; Filename: "{app}\Hearth.exe"
Name: "{autodesktop}\Hearth"; Filename: "{app}\Hearth.exe"; Tasks: desktopicon

[Registry]
; .gguf -> "Open with Hearth", for this user; removed again on uninstall.
Root: HKCU; Subkey: "Software\Classes\.gguf\OpenWithProgids"; ValueType: string; ValueName: "Hearth.gguf"; ValueData: ""; Flags: uninsdeletevalue
Root: HKCU; Subkey: "Software\Classes\Hearth.gguf"; ValueType: string; ValueData: "GGUF language model"; Flags: uninsdeletekey
Root: HKCU; Subkey: "Software\Classes\Hearth.gguf\DefaultIcon"; ValueType: string; ValueData: "{app}\Hearth.exe,0"
Root: HKCU; Subkey: "Software\Classes\Hearth.gguf\shell\open\command"; ValueType: string; ValueData: """{app}\Hearth.exe"" ""%1"""

[Run]
Filename: "{app}\Hearth.exe"; Description: "Start Hearth"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Only what the app folder holds; conversations and models in %LOCALAPPDATA%\hearth stay.
Type: filesandordirs; Name: "{app}\_internal"
