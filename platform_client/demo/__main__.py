"""`python -m platform_client.demo …`"""

from platform_client.demo.cli import main

main()
