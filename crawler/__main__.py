from crawler.cli import app

app()
