# Install (or upgrade) totem-agent as a Windows service. Run in an elevated PowerShell:
#
#   powershell -ExecutionPolicy Bypass -File .\install.ps1 [-Binary .\totem-agent.exe]
#
# Copies the binary to %ProgramFiles%\totem-agent, then `totem-agent.exe service install`
# registers the service (automatic start, restart on failure) and starts it. Config,
# buffer and logs live in %ProgramData%\totem-agent and are kept on upgrade.
# Idempotent: run it again to upgrade. docs/install.md explains every step.
[CmdletBinding()]
param(
    [string]$Binary = (Join-Path $PSScriptRoot 'totem-agent.exe')
)
$ErrorActionPreference = 'Stop'

$principal = New-Object Security.Principal.WindowsPrincipal(
    [Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    Write-Error 'install.ps1 must run as Administrator: right-click PowerShell, "Run as administrator".'
    exit 1
}
if (-not (Test-Path -LiteralPath $Binary -PathType Leaf)) {
    Write-Error "No totem-agent.exe at $Binary : build it with PyInstaller (installer\totem-agent.spec) or pass -Binary."
    exit 1
}

$target = Join-Path $env:ProgramFiles 'totem-agent'
New-Item -ItemType Directory -Force -Path $target | Out-Null
$service = Get-Service -Name 'totem-agent' -ErrorAction SilentlyContinue
if ($service -and $service.Status -ne 'Stopped') {
    Stop-Service -Name 'totem-agent'   # the running .exe cannot be replaced
}
Copy-Item -LiteralPath $Binary -Destination (Join-Path $target 'totem-agent.exe') -Force
$example = Join-Path $PSScriptRoot 'config.example.toml'
if (Test-Path -LiteralPath $example) {
    Copy-Item -LiteralPath $example -Destination $target -Force
}

& (Join-Path $target 'totem-agent.exe') service install
if ($LASTEXITCODE -ne 0) {
    Write-Error "totem-agent service install failed (exit code $LASTEXITCODE)"
    exit $LASTEXITCODE
}

# The tray icon runs in each user's session at logon (totem-agent-tray.exe, built
# by the same spec when the build venv has the tray extra), never inside the service.
$tray = Join-Path $PSScriptRoot 'totem-agent-tray.exe'
if (Test-Path -LiteralPath $tray) {
    Copy-Item -LiteralPath $tray -Destination $target -Force
    Set-ItemProperty -Path 'HKLM:\Software\Microsoft\Windows\CurrentVersion\Run' `
        -Name 'totem-agent-tray' -Value ('"' + (Join-Path $target 'totem-agent-tray.exe') + '"')
}
Write-Output 'totem-agent installed. Check it: & "$env:ProgramFiles\totem-agent\totem-agent.exe" status'
